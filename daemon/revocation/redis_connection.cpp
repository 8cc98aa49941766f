#include "revocation/redis_connection.h"

#include <fcntl.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace hsmsignd::revocation {
namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

// hiredis's argv: pointers and lengths, so that arguments may hold any byte, NUL and '%' included.
struct Argv {
  template <typename Range>
  explicit Argv(const Range& args) {
    for (const auto& a : args) {
      pointers.push_back(a.data());
      lengths.push_back(a.size());
    }
  }
  int count() const { return static_cast<int>(pointers.size()); }
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
};

bool is_status(const redisReply* reply, std::string_view text) {
  return reply != nullptr && reply->type == REDIS_REPLY_STATUS && std::string_view(reply->str, reply->len) == text;
}

}  // namespace

std::optional<RedisConnection> RedisConnection::open(const RedisAddress& address, const std::string& password,
                                                     std::chrono::milliseconds timeout, std::string& error) {
  const timeval tv = to_timeval(timeout);
  redisContext* raw = address.kind == RedisAddress::Kind::unix_socket
                          ? redisConnectUnixWithTimeout(address.path.c_str(), tv)
                          : redisConnectWithTimeout(address.host.c_str(), address.port, tv);
  if (raw == nullptr) {
    error = "cannot connect to " + address.text() + ": out of memory";
    return std::nullopt;
  }
  RedisConnection c(raw);
  if (raw->err != 0) {
    error = "cannot connect to " + address.text() + ": " + c.error();
    return std::nullopt;
  }
  // The daemon's children (none today) must not inherit a connection that is AUTHed as the daemon.
  (void)::fcntl(raw->fd, F_SETFD, FD_CLOEXEC);
  // Keepalive is TCP's; a Unix socket refuses it (EOPNOTSUPP) and never half-opens anyway.
  const bool tcp = address.kind == RedisAddress::Kind::tcp;
  if (redisSetTimeout(raw, tv) != REDIS_OK || (tcp && redisEnableKeepAlive(raw) != REDIS_OK)) {
    error = "cannot set up the connection to " + address.text() + ": " + c.error();
    return std::nullopt;
  }
  if (!password.empty()) {
    const RedisReply reply = c.command({"AUTH", password});
    if (!is_status(reply.get(), "OK")) {
      // The reply is the server's own text (WRONGPASS …), which never repeats what was sent.
      error = describe_failure("redis at " + address.text() + " refused AUTH", c, reply.get());
      return std::nullopt;
    }
  }
  // PING also tells a server that is still loading its data (LOADING) or wants a password (NOAUTH).
  const RedisReply pong = c.command({"PING"});
  if (!is_status(pong.get(), "PONG")) {
    error = describe_failure("redis at " + address.text() + " does not answer PING", c, pong.get());
    return std::nullopt;
  }
  return c;
}

RedisReply RedisConnection::command(std::initializer_list<std::string_view> argv) {
  Argv a(argv);  // not const: hiredis takes `const char**`
  return RedisReply(
      static_cast<redisReply*>(redisCommandArgv(context_.get(), a.count(), a.pointers.data(), a.lengths.data())));
}

RedisReply RedisConnection::command(const std::vector<std::string>& argv) {
  Argv a(argv);  // not const: hiredis takes `const char**`
  return RedisReply(
      static_cast<redisReply*>(redisCommandArgv(context_.get(), a.count(), a.pointers.data(), a.lengths.data())));
}

bool RedisConnection::append(std::initializer_list<std::string_view> argv) {
  Argv a(argv);  // not const: hiredis takes `const char**`
  return redisAppendCommandArgv(context_.get(), a.count(), a.pointers.data(), a.lengths.data()) == REDIS_OK;
}

bool RedisConnection::append(const std::vector<std::string>& argv) {
  Argv a(argv);  // not const: hiredis takes `const char**`
  return redisAppendCommandArgv(context_.get(), a.count(), a.pointers.data(), a.lengths.data()) == REDIS_OK;
}

RedisReply RedisConnection::reply() {
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK) return nullptr;
  return RedisReply(static_cast<redisReply*>(raw));
}

bool RedisConnection::read_available() { return redisBufferRead(context_.get()) == REDIS_OK; }

bool RedisConnection::buffered_reply(RedisReply& out) {
  void* raw = nullptr;
  if (redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK) return false;
  out.reset(static_cast<redisReply*>(raw));
  return true;
}

bool RedisConnection::flush() {
  int done = 0;
  while (done == 0)
    if (redisBufferWrite(context_.get(), &done) != REDIS_OK) return false;
  return true;
}

bool RedisConnection::set_timeout(std::chrono::milliseconds timeout) {
  return redisSetTimeout(context_.get(), to_timeval(timeout)) == REDIS_OK;
}

std::string RedisConnection::error() const {
  if (context_->err == 0) return "no error";
  // A blocking read that SO_RCVTIMEO ended reports EAGAIN, which would read as a mystery.
  if (context_->err == REDIS_ERR_IO && std::string_view(context_->errstr) == std::strerror(EAGAIN))
    return "no answer within the timeout";
  return context_->errstr;
}

std::string describe_failure(std::string_view what, const RedisConnection& connection, const redisReply* reply) {
  std::string text(what);
  text += ": ";
  if (reply == nullptr) return text + connection.error();
  if (reply->type == REDIS_REPLY_ERROR) return text + std::string(reply->str, reply->len);
  return text + "unexpected reply";
}

}  // namespace hsmsignd::revocation
