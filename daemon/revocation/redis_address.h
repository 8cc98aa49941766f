// Where the shared revocation store listens: "unix:/abs/path" or "tcp://host:port". Parsed when the
// configuration is loaded, so that a bad value is refused at start-up rather than found at the first
// connection; no hiredis here, the config layer links this alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hsmsignd::revocation {

struct RedisAddress {
  enum class Kind { unix_socket, tcp };
  Kind kind = Kind::unix_socket;
  std::string path;  // unix_socket: absolute
  std::string host;  // tcp: an IP literal (IPv6 without its brackets) or a host name
  unsigned short port = 0;

  // As it was written ("unix:/run/redis.sock", "tcp://[::1]:6379"), for messages.
  std::string text() const;
};

struct ParsedRedisAddress {
  std::optional<RedisAddress> address;
  // Why the text is not an address, when `address` is empty. It never quotes the text: a password
  // pasted into the address (tcp://user:secret@host) must not reach a log through it.
  std::string error;
};

ParsedRedisAddress parse_redis_address(std::string_view text);

}  // namespace hsmsignd::revocation
