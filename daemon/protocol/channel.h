// One end of the socketpair between the front and a signer. Frames to send are queued and a writer
// thread sends whatever has queued meanwhile in one write: one frame at once when idle, many per write
// under load (a round trip per message would cost more CPU than the signature's bookkeeping).
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
  // Reads frames until the peer closes, a read fails or a frame's length is impossible, calling
  // on_frame for each; returns why it stopped. Run it on one thread.
  std::string read_frames(const std::function<void(Frame&&)>& on_frame);
  // Stops the writer after what is queued: the peer then reads the end of the stream.
  void finish();
  // finish(), and wakes the reader too.
  void close();

 private:
  void write_loop();

  const int fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string queued_;
  bool closing_ = false, broken_ = false;
  std::thread writer_;
};

}  // namespace hsmsignd::protocol
