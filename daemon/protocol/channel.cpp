#include "protocol/channel.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hsmsignd::protocol {

Channel::Channel(int fd) : fd_(fd), writer_([this] {
  ::pthread_setname_np(::pthread_self(), "hsmsignd-wire");
  write_loop();
}) {}

Channel::~Channel() {
  close();
  if (writer_.joinable()) writer_.join();
  ::close(fd_);
}

bool Channel::send(std::string frame) {
  bool wake;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || broken_) return false;
    wake = queued_.empty();
    if (wake) queued_ = std::move(frame);
    else queued_.append(frame);
  }
  if (wake) wake_.notify_one();
  return true;
}

void Channel::write_loop() {
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return !queued_.empty() || closing_; });
    if (queued_.empty()) break;  // closing, and everything is out
    batch.swap(queued_);
    queued_.clear();
    lock.unlock();
    std::size_t done = 0;
    while (done < batch.size()) {
      const ssize_t n = ::send(fd_, batch.data() + done, batch.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    lock.lock();
    if (done < batch.size()) {
      broken_ = true;
      queued_.clear();
      break;
    }
    batch.clear();
  }
  lock.unlock();
  ::shutdown(fd_, SHUT_WR);
}

std::string Channel::read_frames(const std::function<void(Frame&&)>& on_frame) {
  FrameParser parser;
  std::string buffer(256 * 1024, '\0');
  for (;;) {
    const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return "the other end closed the channel";
    if (n < 0) return std::string("reading the channel: ") + std::strerror(errno);
    parser.feed(buffer.data(), static_cast<std::size_t>(n));
    try {
      while (auto frame = parser.next()) on_frame(std::move(*frame));
    } catch (const WireError& e) {
      return std::string("an impossible frame: ") + e.what();
    }
  }
}

void Channel::finish() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_one();
}

void Channel::close() {
  finish();
  ::shutdown(fd_, SHUT_RD);
}

}  // namespace hsmsignd::protocol
