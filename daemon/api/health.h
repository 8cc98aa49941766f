// Whether the token can sign, as the last signing attempts showed it: /healthz answers from this (and
// from the keyring, which reports a lifecycle step that failed as "degraded").
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace hsmsignd::api {

class Health {
 public:
  enum class Status { ok, degraded, unavailable };

  // Each returns whether the status changed, so the caller logs transitions and not every request.
  bool token_ok();
  bool token_failed(std::string reason);  // e.g. "C_Sign: CKR_DEVICE_REMOVED"

  struct Report {
    Status status;
    std::string reason;
  };
  Report report() const;

 private:
  std::atomic<bool> failing_{false};  // lets token_ok(), called per signature, skip the lock
  mutable std::mutex mutex_;
  std::string unavailable_;  // empty: the token signs
};

}  // namespace hsmsignd::api
