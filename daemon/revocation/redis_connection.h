// One synchronous hiredis connection, owned: connected, authenticated and answering PING before anyone
// uses it. Commands go as argv with explicit lengths, so that no byte of an iss or a jti is ever read
// as a format string. Internal to the Redis store; nothing outside daemon/revocation sees hiredis.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/redis_address.h"

namespace hsmsignd::revocation {

struct RedisReplyFree {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

class RedisConnection {
 public:
  // A connection that answered PING (after AUTH when `password` is not empty), or nullopt and why not
  // in `error`. `timeout` bounds the connect and, afterwards, every read and write: a Redis that stops
  // answering is a failed command, not a hung thread. The error never holds the password.
  static std::optional<RedisConnection> open(const RedisAddress& address, const std::string& password,
                                             std::chrono::milliseconds timeout, std::string& error);

  // Sends one command and waits for its reply; null when the connection failed (see error()).
  RedisReply command(std::initializer_list<std::string_view> argv);
  RedisReply command(const std::vector<std::string>& argv);
  // Pipelining: queue commands, then take their replies in order with reply(). False when the
  // command could not be queued.
  bool append(std::initializer_list<std::string_view> argv);
  bool append(const std::vector<std::string>& argv);
  // The next reply to what was appended (sending what is queued first); null when the connection failed.
  RedisReply reply();

  // For a subscriber that waits on fd() itself: one read of what the socket holds (call it only when
  // poll says readable), then the complete replies, one at a time, from what was read.
  bool read_available();
  // False when the connection failed; otherwise `out` is the next complete reply, or null for none yet.
  bool buffered_reply(RedisReply& out);
  // Sends what append() queued without waiting for any reply.
  bool flush();

  // Bounds each read and write from now on (open() set it to its `timeout`).
  bool set_timeout(std::chrono::milliseconds timeout);

  int fd() const { return context_->fd; }
  // Why the connection failed, as hiredis says it ("Server closed the connection", "Connection refused").
  std::string error() const;

 private:
  struct ContextFree {
    void operator()(redisContext* context) const noexcept { redisFree(context); }
  };
  explicit RedisConnection(redisContext* context) : context_(context) {}
  std::unique_ptr<redisContext, ContextFree> context_;
};

// "<what>: <why>" for a command that failed: the connection's error when `reply` is null, the
// server's error text for an error reply, "unexpected reply" otherwise.
std::string describe_failure(std::string_view what, const RedisConnection& connection, const redisReply* reply);

}  // namespace hsmsignd::revocation
