// One end of the socketpair between the front and a signer. A frame is written by the thread that sends
// it when no write is under way (no thread to wake: a wake-up costs more CPU than the frame's
// bookkeeping); frames sent meanwhile are queued and go out together in the next write, many per write
// under load. A write that would block (the peer is slow to read) is finished by a writer thread, so a
// sender never waits for the peer.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/wire.h"

namespace hsmsignd::protocol {

class Channel {
 public:
  explicit Channel(int fd);  // takes the descriptor
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Queues a frame made by Writer::finish(). False once the channel is closed or the peer is gone.
  bool send(std::string frame);
  // Queues a frame to go out with the next send() or flush(): for a thread that has more to send soon.
  bool hold(std::string frame);
  void flush();
  // Reads frames until the peer closes, a read fails or a frame's length is impossible, calling
  // on_frame for each; returns why it stopped. Run it on one thread.
  std::string read_frames(const std::function<void(Frame&&)>& on_frame);
  // Stops the writer after what is queued: the peer then reads the end of the stream.
  void finish();
  // finish(), and wakes the reader too.
  void close();

 private:
  void write_loop();
  // Writes what is queued without blocking, while there is something; with the lock held, and writing_
  // set by the caller. Returns false when the peer is gone.
  bool drain_without_blocking(std::unique_lock<std::mutex>& lock);

  const int fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string queued_;
  bool closing_ = false, broken_ = false;
  bool writing_ = false;  // a thread is inside send(): the others queue
  std::thread writer_;
};

}  // namespace hsmsignd::protocol
