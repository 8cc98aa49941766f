#include "config/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <utility>

namespace hsmsignd::config {
namespace {

std::optional<unsigned short> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;  // digits only: no sign, no space
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<unsigned short>(value);
}

// inet_pton is strict: dotted quads only for IPv4 ("127.1" and "0x7f.0.0.1" are refused), no zone ids.
bool is_ip_literal(int family, const std::string& host) {
  in6_addr buffer{};  // large enough for either family
  return inet_pton(family, host.c_str(), &buffer) == 1;
}

}  // namespace

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  std::string host;
  std::string_view port;
  int family = AF_INET;
  if (text.starts_with('[')) {
    const std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    family = AF_INET6;
  } else {
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  const std::optional<unsigned short> number = parse_port(port);
  if (!number || !is_ip_literal(family, host)) return std::nullopt;
  return ListenAddress{std::move(host), *number};
}

}  // namespace hsmsignd::config
