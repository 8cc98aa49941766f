#include "signer/sign_queue.h"

#include <pthread.h>

#include <algorithm>

#include "common/thread_priority.h"

namespace hsmsignd::signer {

SignQueue::SignQueue(std::size_t workers, std::size_t max_queued)
    : max_queued_(max_queued),
      workers_(std::max<std::size_t>(workers, 1)),
      slow_limit_(workers_ > 1 ? workers_ - 1 : 1),
      shared_slow_limit_(std::max(std::thread::hardware_concurrency(), 2u) - 1) {
  for (std::size_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { work(false); });
  for (std::size_t i = 0; i < slow_limit_; ++i) threads_.emplace_back([this] { work(true); });
}

SignQueue::~SignQueue() { stop(); }

bool SignQueue::submit(SignJob job) {
  const bool slow = key_type(job.algorithm) == KeyType::RSA;
  job.submitted = std::chrono::steady_clock::now();
  bool wake;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || fast_.size() + slow_.size() >= max_queued_) return false;
    if (!slow) last_fast_submit_ = job.submitted;
    (slow ? slow_ : fast_).push_back(std::move(job));
    wake = runnable_locked(slow);
  }
  if (wake) (slow ? slow_wake_ : fast_wake_).notify_one();
  return true;
}

void SignQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  fast_wake_.notify_all();
  slow_wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

std::size_t SignQueue::queued() const {
  std::lock_guard lock(mutex_);
  return fast_.size() + slow_.size();
}

// At most `workers` jobs at once (one token session each). An RSA job starts only when no EC or EdDSA
// job waits for the session it would take, and at most slow_limit_ of them run. While EC or EdDSA
// requests are coming in, RSA jobs also leave a core free: with every core busy on a millisecond-long
// RSA signature, an ES256 answer waits for the scheduler (bench/, ES256 p99 beside a saturating RS256
// load: 5.8-6.1 ms with all cores, 1.9-3.4 ms with one left free, 0.8-1.1 ms alone).
bool SignQueue::runnable_locked(bool slow) const {
  if (running_ >= workers_) return false;
  if (!slow) return !fast_.empty();
  const bool ec_recently = std::chrono::steady_clock::now() - last_fast_submit_ < kEcRecently;
  return !slow_.empty() && fast_.empty() &&
         slow_running_ < (ec_recently ? std::min(slow_limit_, shared_slow_limit_) : slow_limit_);
}

void SignQueue::work(bool slow) {
  ::pthread_setname_np(::pthread_self(), slow ? "hsmsignd-rsa" : "hsmsignd-sign");  // for top -H and perf
  // A request waits on an EC signer; an RSA signature holds a core for a millisecond or more and can let
  // the EC signers, the I/O thread and the audit writer in between.
  if (slow)
    yield_to_latency_sensitive_threads();
  else
    prefer_short_slices();
  auto& wake = slow ? slow_wake_ : fast_wake_;
  auto& lane = slow ? slow_ : fast_;
  std::unique_lock lock(mutex_);
  for (;;) {
    // A worker drains its lane without sleeping between jobs; it waits only when nothing can run.
    wake.wait(lock, [&] { return runnable_locked(slow) || (stopping_ && lane.empty()); });
    if (!runnable_locked(slow)) return;  // stopping and drained
    SignJob job = std::move(lane.front());
    lane.pop_front();
    ++running_;
    if (slow) ++slow_running_;
    lock.unlock();

    job.run(std::chrono::steady_clock::now() - job.submitted);

    lock.lock();
    --running_;
    if (slow) --slow_running_;
    // A session came free: a worker of either lane that waited only for it may go on. Only a worker that
    // can run is woken: the woken thread preempts this one, and RSA workers woken for nothing (all the
    // cores RSA may have are busy) cost ES256 requests beside an RS256 load a context switch each.
    if (runnable_locked(false)) fast_wake_.notify_one();
    if (runnable_locked(true)) slow_wake_.notify_one();
  }
}

}  // namespace hsmsignd::signer
