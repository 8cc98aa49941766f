// A throw-away Redis for the tests of the Redis store: Debian's /usr/bin/redis-server on a Unix socket
// in a fresh temporary folder, durable as the spec asks (appendonly yes, appendfsync always), never a
// shared or system Redis. It can crash (kill -9) and start again on the same folder, as a real one.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace hsmsignd::testing {

class RedisServer {
 public:
  // Makes the folder; the server runs only once start() is called. `password` empty: no requirepass.
  explicit RedisServer(std::string password = {});
  ~RedisServer();  // stops the server, removes the folder
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server on the folder (again after kill() or stop(), with what it made durable) and
  // returns once it answers PING. Throws std::runtime_error, with its log, when it does not. The
  // server is killed when the calling thread ends, so a crashed test leaves no Redis behind.
  void start();
  // SIGTERM, then SIGKILL when it has not exited within 5 s.
  void stop();
  // SIGKILL: a crash, nothing flushed but what appendfsync already made durable.
  void kill();
  // SIGSTOP and SIGCONT: a Redis that stops answering without closing its connections.
  void freeze();
  void thaw();

  bool running() const { return pid_ > 0; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path socket() const { return dir_ / "redis.sock"; }
  const std::string& password() const { return password_; }
  std::string log() const;

 private:
  void wait_until_answering();
  void reap();

  std::filesystem::path dir_;
  std::string password_;
  pid_t pid_ = -1;
};

}  // namespace hsmsignd::testing
