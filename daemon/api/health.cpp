#include "api/health.h"

namespace hsmsignd::api {

bool Health::token_ok() {
  if (!failing_.load(std::memory_order_relaxed)) return false;
  std::lock_guard lock(mutex_);
  unavailable_.clear();
  return failing_.exchange(false);
}

bool Health::token_failed(std::string reason) {
  std::lock_guard lock(mutex_);
  unavailable_ = std::move(reason);
  return !failing_.exchange(true);
}

Health::Report Health::report() const {
  std::lock_guard lock(mutex_);
  if (!unavailable_.empty()) return {Status::unavailable, unavailable_};
  return {Status::ok, {}};
}

}  // namespace hsmsignd::api
