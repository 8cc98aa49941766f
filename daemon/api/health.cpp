#include "api/health.h"

namespace hsmsignd::api {

void Health::token_ok() {
  if (!failing_.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(mutex_);
  unavailable_.clear();
  failing_ = false;
}

void Health::token_failed(std::string reason) {
  std::lock_guard lock(mutex_);
  unavailable_ = std::move(reason);
  failing_ = true;
}

Health::Report Health::report() const {
  std::lock_guard lock(mutex_);
  if (!unavailable_.empty()) return {Status::unavailable, unavailable_};
  return {Status::ok, {}};
}

}  // namespace hsmsignd::api
