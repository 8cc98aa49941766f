// The JWKS listener address: "IPv4:port" or "[IPv6]:port", IP literals only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hsmsignd::config {

struct ListenAddress {
  std::string host;  // the literal alone; IPv6 without its brackets
  unsigned short port = 0;
};

// nullopt for host names (resolving them would make what is exposed depend on DNS), zone ids,
// ports outside 1..65535 and anything else.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace hsmsignd::config
