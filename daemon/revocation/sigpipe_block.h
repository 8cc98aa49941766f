// Blocks SIGPIPE on the calling thread for its lifetime. hiredis writes with write(2), not with
// MSG_NOSIGNAL, so a command sent to a Redis that just died would raise SIGPIPE and end the daemon;
// blocked, the write fails with EPIPE and the store reports the outage. A SIGPIPE raised meanwhile is
// taken off the thread before the old mask comes back, so it is never delivered later.
#pragma once

#include <signal.h>

namespace hsmsignd::revocation {

class SigpipeBlock {
 public:
  SigpipeBlock();
  ~SigpipeBlock();
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_mask_;
  bool was_pending_ = false;  // then it is not ours to consume
};

}  // namespace hsmsignd::revocation
