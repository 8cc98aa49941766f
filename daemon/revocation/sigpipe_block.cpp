#include "revocation/sigpipe_block.h"

#include <pthread.h>

#include <cerrno>
#include <ctime>

namespace hsmsignd::revocation {
namespace {

sigset_t only_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  return set;
}

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

}  // namespace

SigpipeBlock::SigpipeBlock() {
  const sigset_t pipe = only_sigpipe();
  was_pending_ = sigpipe_pending();
  pthread_sigmask(SIG_BLOCK, &pipe, &old_mask_);
}

SigpipeBlock::~SigpipeBlock() {
  const sigset_t pipe = only_sigpipe();
  if (!was_pending_ && sigpipe_pending()) {
    const timespec no_wait{0, 0};
    while (sigtimedwait(&pipe, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace hsmsignd::revocation
