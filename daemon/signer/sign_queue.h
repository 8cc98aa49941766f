// The signer threads: token calls block (a network HSM takes milliseconds), so they never run on the
// I/O thread. At most one job per token session runs at once. RSA jobs have their own threads, at most
// all sessions but one of them busy (all cores but one while EC jobs come in) and at a lower priority,
// so a flood of slow RSA signatures can starve neither EC and EdDSA signatures nor the threads that
// answer them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hsmsignd/algorithm.h"

namespace hsmsignd::signer {

// One signature to make: `run` calls the token on a signer thread, told how long the job waited.
struct SignJob {
  Algorithm algorithm = Algorithm::ES256;
  std::function<void(std::chrono::nanoseconds queued)> run;
  std::chrono::steady_clock::time_point submitted{};  // set by submit
};

class SignQueue {
 public:
  SignQueue(std::size_t workers, std::size_t max_queued);
  ~SignQueue();
  SignQueue(const SignQueue&) = delete;
  SignQueue& operator=(const SignQueue&) = delete;

  // False when max_queued jobs already wait: the caller answers 429 instead of queueing without bound.
  bool submit(SignJob job);
  // Runs what is queued, then joins the workers. Later submits are refused.
  void stop();

  std::size_t queued() const;
  // Jobs that may run at once: one per token session.
  std::size_t workers() const { return workers_; }

 private:
  void work(bool slow);
  bool runnable_locked(bool slow) const;

  const std::size_t max_queued_;
  const std::size_t workers_;
  const std::size_t slow_limit_;
  const std::size_t shared_slow_limit_;  // RSA jobs while EC jobs come in: all cores but one
  static constexpr std::chrono::milliseconds kEcRecently{20};
  mutable std::mutex mutex_;
  std::condition_variable fast_wake_, slow_wake_;
  std::deque<SignJob> fast_, slow_;
  std::size_t running_ = 0, slow_running_ = 0;
  std::chrono::steady_clock::time_point last_fast_submit_{};
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hsmsignd::signer
