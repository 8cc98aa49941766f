// max_rate: a token bucket per [[client]] over its signing requests, so that one issuer, compromised or
// broken, cannot take the token from the others. Refusals are counted for /metrics and gathered for
// the audit log, one line per client per second of refusals rather than one per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "policy/policy.h"

namespace hsmsignd::policy {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // `clients` must outlive the limiter: clients are known by their address in it.
  explicit RateLimiter(const std::vector<config::ClientConfig>& clients);

  // Takes one request from the client's bucket. Allowed: zero; refused: the whole seconds until a
  // request would be allowed (at least 1), for Retry-After.
  std::chrono::seconds take(const config::ClientConfig& client, const Peer& peer, Clock::time_point now);

  // Refusals not yet reported: per client, how many and the first peer refused since the last report.
  struct Refusals {
    const config::ClientConfig* client;
    Peer first_peer;
    std::uint64_t refused;
  };
  std::vector<Refusals> take_unreported();

  struct Total {
    std::string client;
    std::uint64_t refused;
  };
  std::vector<Total> totals() const;  // clients with a max_rate, refusals since start

  bool limits_anyone() const { return !buckets_.empty(); }

 private:
  struct Bucket {
    const config::ClientConfig* client;
    double per_second;  // refill
    double burst;       // capacity: one second's worth, at least one request
    mutable std::mutex mutex;
    double tokens;
    Clock::time_point filled;
    std::uint64_t refused_total = 0;
    std::uint64_t unreported = 0;
    Peer first_unreported{};
  };
  Bucket* find(const config::ClientConfig& client);

  std::vector<std::unique_ptr<Bucket>> buckets_;  // only clients with a max_rate; few, so a scan
};

}  // namespace hsmsignd::policy
