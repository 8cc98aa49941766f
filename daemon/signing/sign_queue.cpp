#include "signing/sign_queue.h"

#include <pthread.h>

#include <algorithm>

namespace hsmsignd::signing {

SignQueue::SignQueue(std::size_t workers, std::size_t max_queued)
    : max_queued_(max_queued), slow_limit_(workers > 1 ? workers - 1 : 1) {
  workers = std::max<std::size_t>(workers, 1);
  for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this] {
      ::pthread_setname_np(::pthread_self(), "hsmsignd-sign");  // for top -H and perf
      work();
    });
}

SignQueue::~SignQueue() { stop(); }

bool SignQueue::submit(SignJob job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || fast_.size() + slow_.size() >= max_queued_) return false;
    (key_type(job.signer->algorithm()) == KeyType::RSA ? slow_ : fast_).push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void SignQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

std::size_t SignQueue::queued() const {
  std::lock_guard lock(mutex_);
  return fast_.size() + slow_.size();
}

bool SignQueue::runnable_locked() const {
  return !fast_.empty() || (!slow_.empty() && slow_running_ < slow_limit_);
}

void SignQueue::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // A worker drains the queue without sleeping between jobs; it waits only when nothing can run.
    wake_.wait(lock, [&] { return runnable_locked() || (stopping_ && fast_.empty() && slow_.empty()); });
    if (!runnable_locked()) return;  // stopping and drained
    const bool slow = fast_.empty();
    SignJob job = std::move(slow ? slow_.front() : fast_.front());
    (slow ? slow_ : fast_).pop_front();
    if (slow) ++slow_running_;
    lock.unlock();

    auto result = job.digest ? job.signer->sign_digest(as_bytes(job.input)) : job.signer->sign(as_bytes(job.input));
    job.done(std::move(result), std::move(job.input));

    lock.lock();
    if (slow) {
      --slow_running_;
      wake_.notify_one();  // a worker that waited only for the RSA limit may go on
    }
  }
}

}  // namespace hsmsignd::signing
