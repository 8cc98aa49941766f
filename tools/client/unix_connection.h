// One stream connection to a Unix socket, bounded by a deadline: every wait polls with the time left of
// the whole call, so a daemon that stops answering half-way is a timeout, never a hang.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "hsmsignd/client.h"

namespace hsmsignd::client::detail {

class Deadline {
 public:
  explicit Deadline(std::chrono::milliseconds budget)
      : budget_(budget), end_(std::chrono::steady_clock::now() + budget) {}
  // Milliseconds left for poll(), rounded up so that a wait never ends just before the deadline; 0 once
  // it has passed.
  int remaining_ms() const;
  std::chrono::milliseconds budget() const { return budget_; }

 private:
  std::chrono::milliseconds budget_;
  std::chrono::steady_clock::time_point end_;
};

// Owns a file descriptor: closed on every path out of a call.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  int release() noexcept;

 private:
  int fd_ = -1;
};

class UnixConnection {
 public:
  // A connect failure is Kind::connect naming the socket; a listener whose backlog stays full until the
  // deadline is Kind::timeout.
  static Result<UnixConnection> open(const std::string& socket, const Deadline& deadline);

  // All of `data`, or Kind::io (the peer went away: EPIPE, never SIGPIPE) or Kind::timeout.
  Result<void> write_all(std::string_view data, const Deadline& deadline);

  // Appends what arrives (at most `max` bytes) to `out`; 0 at the end of the stream.
  Result<std::size_t> read_some(std::string& out, std::size_t max, const Deadline& deadline);

  const std::string& socket() const { return socket_; }

 private:
  UnixConnection(Fd fd, std::string socket) : fd_(std::move(fd)), socket_(std::move(socket)) {}
  Result<void> wait(short events, const Deadline& deadline, std::string_view doing) const;

  Fd fd_;
  std::string socket_;
};

}  // namespace hsmsignd::client::detail
