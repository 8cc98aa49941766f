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

bool Channel::hold(std::string frame) {
  std::lock_guard lock(mutex_);
  if (closing_ || broken_) return false;
  queued_.append(frame);
  return true;
}

void Channel::flush() { send({}); }

bool Channel::send(std::string frame) {
  std::unique_lock lock(mutex_);
  if (closing_ || broken_) return false;
  queued_.append(frame);
  if (writing_ || queued_.empty()) return true;  // the writing thread takes it along
  writing_ = true;
  const bool ok = drain_without_blocking(lock);
  writing_ = false;
  // The rest, the peer's end, or a close that waited for this write: the writer's.
  if (!queued_.empty() || !ok || closing_) wake_.notify_one();
  return ok;
}

bool Channel::drain_without_blocking(std::unique_lock<std::mutex>& lock) {
  std::string batch;
  while (!queued_.empty()) {
    batch.swap(queued_);
    lock.unlock();
    std::size_t done = 0;
    ssize_t n = 0;
    while (done < batch.size()) {
      n = ::send(fd_, batch.data() + done, batch.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    const bool would_block = done < batch.size() && n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    lock.lock();
    if (done < batch.size()) {
      if (!would_block) {
        broken_ = true;
        queued_.clear();
        return false;
      }
      // What is left goes first, before what was queued while this thread wrote.
      batch.erase(0, done);
      queued_.insert(0, batch);
      return true;
    }
    batch.clear();
  }
  return true;
}

void Channel::write_loop() {
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return (!queued_.empty() && !writing_) || (closing_ && !writing_) || broken_; });
    if (broken_ || queued_.empty()) break;  // the peer is gone, or closing and everything is out
    writing_ = true;
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
    writing_ = false;
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
