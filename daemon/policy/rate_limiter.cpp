#include "policy/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace hsmsignd::policy {

RateLimiter::RateLimiter(const std::vector<config::ClientConfig>& clients) {
  for (const auto& c : clients) {
    if (!c.max_rate) continue;
    auto b = std::make_unique<Bucket>();
    b->client = &c;
    b->per_second = static_cast<double>(c.max_rate->count) / static_cast<double>(c.max_rate->per.count());
    b->burst = std::max(1.0, std::ceil(b->per_second));
    b->tokens = b->burst;
    b->filled = Clock::time_point::min();
    buckets_.push_back(std::move(b));
  }
}

RateLimiter::Bucket* RateLimiter::find(const config::ClientConfig& client) {
  for (auto& b : buckets_)
    if (b->client == &client) return b.get();
  return nullptr;
}

std::chrono::seconds RateLimiter::take(const config::ClientConfig& client, const Peer& peer, Clock::time_point now) {
  Bucket* b = client.max_rate ? find(client) : nullptr;
  if (b == nullptr) return std::chrono::seconds(0);
  std::lock_guard lock(b->mutex);
  if (b->filled != Clock::time_point::min() && now > b->filled) {
    const double elapsed = std::chrono::duration<double>(now - b->filled).count();
    b->tokens = std::min(b->burst, b->tokens + elapsed * b->per_second);
  }
  b->filled = std::max(b->filled, now);
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return std::chrono::seconds(0);
  }
  if (b->unreported++ == 0) b->first_unreported = peer;
  ++b->refused_total;
  const double wait = (1.0 - b->tokens) / b->per_second;
  return std::chrono::seconds(std::max<long long>(1, static_cast<long long>(std::ceil(wait))));
}

std::vector<RateLimiter::Refusals> RateLimiter::take_unreported() {
  std::vector<Refusals> out;
  for (auto& b : buckets_) {
    std::lock_guard lock(b->mutex);
    if (b->unreported == 0) continue;
    out.push_back({b->client, b->first_unreported, b->unreported});
    b->unreported = 0;
  }
  return out;
}

std::vector<RateLimiter::Total> RateLimiter::totals() const {
  std::vector<Total> out;
  for (const auto& b : buckets_) {
    std::lock_guard lock(b->mutex);
    out.push_back({b->client->name, b->refused_total});
  }
  return out;
}

}  // namespace hsmsignd::policy
