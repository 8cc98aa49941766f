#include "config/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <utility>

#include "common/address_parts.h"

namespace hsmsignd::config {

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
