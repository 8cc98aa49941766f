// The parts of a network address the configuration writes: a port, an IP literal. Shared by the JWKS
// listener's address and the Redis address, so that both refuse the same things.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hsmsignd {

// 1..65535 in decimal digits only: no sign, no blank, no leading "+".
std::optional<unsigned short> parse_port(std::string_view text);

// inet_pton is strict: dotted quads only for IPv4 ("127.1" and "0x7f.0.0.1" are refused), no zone ids.
bool is_ip_literal(int family, const std::string& host);

}  // namespace hsmsignd
