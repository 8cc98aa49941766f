#include "common/address_parts.h"

#include <arpa/inet.h>

namespace hsmsignd {

std::optional<unsigned short> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<unsigned short>(value);
}

bool is_ip_literal(int family, const std::string& host) {
  in6_addr buffer{};  // large enough for either family
  return inet_pton(family, host.c_str(), &buffer) == 1;
}

}  // namespace hsmsignd
