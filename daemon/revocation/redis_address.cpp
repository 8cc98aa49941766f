#include "revocation/redis_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <utility>

#include "common/address_parts.h"

namespace hsmsignd::revocation {
namespace {

constexpr std::string_view kUnixScheme = "unix:";
constexpr std::string_view kTcpScheme = "tcp://";

ParsedRedisAddress refused(std::string why) { return {std::nullopt, std::move(why)}; }

bool is_label_char(char c) {
  // '_' is not in RFC 1123, but container and /etc/hosts names use it and the resolver takes it.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A DNS name: dot-separated labels of 1..63 letters, digits, '-' and '_', not beginning or ending with
// '-', 253 characters at most. A last label of digits alone is refused: "127.1" is not a name, and the
// resolver would take it as a shortened IPv4 address that inet_pton refuses.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::string_view last;
  for (std::size_t start = 0; start <= name.size();) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), is_label_char)) return false;
    last = label;
    start = dot + 1;
  }
  return !std::all_of(last.begin(), last.end(), is_digit);
}

ParsedRedisAddress parse_unix(std::string_view path) {
  if (path.empty()) return refused("a unix: address needs the socket's path, as in unix:/run/redis/redis.sock");
  if (path.front() != '/') return refused("the socket path of a unix: address must be absolute");
  if (path.starts_with("//"))
    return refused("a unix: address is unix:/abs/path, with one slash (not unix:// as in a URL)");
  if (path.find('\0') != std::string_view::npos) return refused("the socket path holds a NUL byte");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return refused("the socket path is longer than the " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                   " bytes a unix socket address can hold");
  RedisAddress a;
  a.kind = RedisAddress::Kind::unix_socket;
  a.path = std::string(path);
  return {std::move(a), {}};
}

ParsedRedisAddress parse_tcp(std::string_view rest) {
  if (rest.find('@') != std::string_view::npos)
    return refused("a tcp:// address holds no user or password: give the password in redis_password_file");
  if (rest.find_first_of("/?#") != std::string_view::npos)
    return refused("a tcp:// address is tcp://host:port, with nothing after the port (no database, path or query)");
  std::string host;
  std::string_view port;
  bool bracketed = false;
  if (rest.starts_with('[')) {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return refused("the IPv6 address of a tcp:// address lacks its closing ']'");
    if (close + 1 >= rest.size() || rest[close + 1] != ':')
      return refused("a tcp:// address needs a port after the host, as in tcp://[::1]:6379");
    host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
    bracketed = true;
  } else {
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos)
      return refused("a tcp:// address needs a port after the host, as in tcp://redis.example:6379");
    host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      return refused("an IPv6 address in a tcp:// address goes in brackets, as in tcp://[::1]:6379");
  }
  if (host.empty()) return refused("a tcp:// address needs a host before the port");
  if (!parse_port(port)) return refused("the port of a tcp:// address must be a number from 1 to 65535");
  if (bracketed) {
    if (!is_ip_literal(AF_INET6, host))
      return refused("the host in brackets is not an IPv6 address (zone ids such as %eth0 are not taken)");
  } else if (!is_ip_literal(AF_INET, host) && !is_host_name(host)) {
    return refused("the host of a tcp:// address is neither a dotted-quad IPv4 address nor a host name");
  }
  RedisAddress a;
  a.kind = RedisAddress::Kind::tcp;
  a.host = std::move(host);
  a.port = *parse_port(port);
  return {std::move(a), {}};
}

}  // namespace

std::string RedisAddress::text() const {
  if (kind == Kind::unix_socket) return std::string(kUnixScheme) + path;
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(kTcpScheme) + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

ParsedRedisAddress parse_redis_address(std::string_view text) {
  if (text.starts_with(kUnixScheme)) return parse_unix(text.substr(kUnixScheme.size()));
  if (text.starts_with(kTcpScheme)) return parse_tcp(text.substr(kTcpScheme.size()));
  return refused("a Redis address is unix:/abs/path or tcp://host:port");
}

}  // namespace hsmsignd::revocation
