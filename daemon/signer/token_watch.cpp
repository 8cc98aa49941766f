#include "signer/token_watch.h"

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <optional>

namespace hsmsignd::signer {

TokenWatch::TokenWatch(pkcs11::SessionPool& pool, std::chrono::milliseconds interval, OnRecovered on_recovered)
    : pool_(pool), interval_(interval), on_recovered_(std::move(on_recovered)) {
  thread_ = std::jthread([this](std::stop_token stop) {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-watch");
    watch(stop);
  });
}

TokenWatch::~TokenWatch() {
  thread_.request_stop();
  thread_.join();
}

void TokenWatch::watch(std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::optional<std::chrono::steady_clock::time_point> lost_since;
  pkcs11::Error cause;
  std::unique_lock lock(mutex);
  for (;;) {
    wake.wait_for(lock, stop, interval_, [] { return false; });
    if (stop.stop_requested()) return;
    if (!pool_.token_lost()) {
      if (!lost_since) continue;
    } else if (!lost_since) {
      lost_since = std::chrono::steady_clock::now();
      cause = pool_.lost_because();
    }
    // The recovery itself happens inside the pool, at the lease this probe asks for.
    if (!pool_.probe()) continue;
    const auto outage = std::chrono::steady_clock::now() - *lost_since;
    lost_since.reset();
    on_recovered_(std::chrono::duration_cast<std::chrono::milliseconds>(outage), cause);
  }
}

}  // namespace hsmsignd::signer
