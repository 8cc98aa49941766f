#include "unix_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "errors.h"

namespace hsmsignd::client::detail {

int Deadline::remaining_ms() const {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(end_ - std::chrono::steady_clock::now()).count();
  return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() {
  // close() is not retried on EINTR: on Linux the descriptor is gone either way, and a retry could close
  // a descriptor another thread has just been given.
  if (fd_ >= 0) ::close(fd_);
}

int Fd::release() noexcept { return std::exchange(fd_, -1); }

namespace {

Error timed_out(std::string_view doing, const std::string& socket, const Deadline& deadline) {
  return make_error(Error::Kind::timeout, "timed out " + std::string(doing) + " " + socket + " (the call's limit is " +
                                              std::to_string(deadline.budget().count()) + " ms)");
}

// Waits for the socket to become connected once connect() said it is under way.
Result<void> finish_connect(const Fd& fd, const std::string& socket, const Deadline& deadline) {
  pollfd p{fd.get(), POLLOUT, 0};
  for (;;) {
    const int n = ::poll(&p, 1, deadline.remaining_ms());
    if (n > 0) break;
    if (n == 0) return timed_out("connecting to", socket, deadline);
    if (errno != EINTR) return errno_error(Error::Kind::connect, "cannot connect to", socket, errno);
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return errno_error(Error::Kind::connect, "cannot connect to", socket, err);
  return {};
}

}  // namespace

Result<UnixConnection> UnixConnection::open(const std::string& socket, const Deadline& deadline) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket.empty()) return make_error(Error::Kind::connect, "cannot connect: no socket path given");
  if (socket.size() >= sizeof address.sun_path || socket.find('\0') != std::string::npos)
    return make_error(Error::Kind::connect, "cannot connect to " + socket + ": not a usable socket path (at most " +
                                                std::to_string(sizeof address.sun_path - 1) + " bytes)");
  std::memcpy(address.sun_path, socket.data(), socket.size());

  // Close-on-exec: a host that forks and execs must not hand our connection to the program it runs.
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return errno_error(Error::Kind::connect, "cannot create a socket for", socket, errno);

  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) break;
    const int err = errno;
    if (err == EISCONN) break;
    if (err == EINTR) continue;
    if (err == EINPROGRESS || err == EALREADY) {
      if (auto done = finish_connect(fd, socket, deadline); !done) return done.error();
      break;
    }
    if (err == EAGAIN) {
      // A Unix listener with a full backlog refuses a non-blocking connect at once, where a blocking one
      // would wait for room: wait a little and try again, within the deadline.
      const int left = deadline.remaining_ms();
      if (left == 0) return timed_out("connecting to (its backlog is full)", socket, deadline);
      ::poll(nullptr, 0, std::min(left, 10));
      continue;
    }
    return errno_error(Error::Kind::connect, "cannot connect to", socket, err);
  }
  return UnixConnection(std::move(fd), socket);
}

Result<void> UnixConnection::wait(short events, const Deadline& deadline, std::string_view doing) const {
  pollfd p{fd_.get(), events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, deadline.remaining_ms());
    if (n > 0) return {};  // readable, writable, or an error/hang-up that the next call reports
    if (n == 0) return timed_out(doing, socket_, deadline);
    if (errno != EINTR) return errno_error(Error::Kind::io, std::string(doing), socket_, errno);
  }
}

Result<void> UnixConnection::write_all(std::string_view data, const Deadline& deadline) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a daemon that goes away must give us EPIPE, not kill the host process with SIGPIPE.
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto ready = wait(POLLOUT, deadline, "writing to"); !ready) return ready.error();
      continue;
    }
    return errno_error(Error::Kind::io, "writing to", socket_, n < 0 ? errno : EPIPE);
  }
  return {};
}

Result<std::size_t> UnixConnection::read_some(std::string& out, std::size_t max, const Deadline& deadline) {
  const std::size_t before = out.size();
  out.resize(before + max);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), out.data() + before, max, 0);
    if (n >= 0) {
      out.resize(before + static_cast<std::size_t>(n));
      return static_cast<std::size_t>(n);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto ready = wait(POLLIN, deadline, "waiting for the answer of"); !ready) {
        out.resize(before);
        return ready.error();
      }
      continue;
    }
    const int err = errno;
    out.resize(before);
    return errno_error(Error::Kind::io, "reading from", socket_, err);
  }
}

}  // namespace hsmsignd::client::detail
