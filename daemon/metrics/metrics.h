// Counters for GET /metrics, in the Prometheus text format. Lock-free on the request path.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "call_stats.h"
#include "hsmsignd/algorithm.h"
#include "revocation/entry.h"
#include "validation/reason.h"

namespace hsmsignd::metrics {

enum class Route { jwt, jws, sign, keys, jwks, healthz, metrics, admin, revoke, verify, statuslist, other };
inline constexpr std::size_t kRoutes = 12;
inline constexpr std::array<int, 12> kStatuses{200, 304, 400, 403, 404, 405, 408, 413, 429, 431, 500, 503};
// Where a signing request's time goes: waiting for a signer (queue), the token's signature and its
// check (sign), waiting for its audit line to be durable (audit).
enum class Stage { queue, sign, audit };
inline constexpr std::size_t kStages = 3;

struct Gauges {  // read when /metrics is rendered
  std::size_t sessions_in_use = 0, sessions = 0, sign_queue = 0;
  std::uint64_t signature_faults = 0;
  bool token_available = true;
  std::uint64_t token_recoveries = 0, token_failed_recoveries = 0;
  std::int64_t connections = 0;
  struct ClientCount {
    std::string client;
    std::uint64_t count;
  };
  std::vector<ClientCount> rate_limited;  // clients with a max_rate: requests it refused
  std::size_t revocation_entries = 0;       // in force, in memory
  bool revocation_store_up = true;
  std::uint64_t revocation_store_outages = 0;
  std::vector<pkcs11::CallStatSnapshot> token_calls;  // the signer processes' Cryptoki calls, summed
  std::size_t signers_running = 0, signers = 0;
  std::uint64_t signer_deaths = 0;
};

class Metrics {
 public:
  struct Keyset {
    std::string name;
    Algorithm algorithm;
  };
  explicit Metrics(std::vector<Keyset> keysets);

  void request(Route route, int status);
  void signature(std::string_view keyset);
  void stage(Stage stage, std::chrono::nanoseconds took);
  void verification(validation::Reason result);
  void algorithm_confusion();
  void revocation(revocation::Kind kind);

  std::string render(const Gauges& gauges) const;

 private:
  std::array<std::array<std::atomic<std::uint64_t>, kStatuses.size()>, kRoutes> requests_{};
  std::vector<Keyset> keysets_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> signatures_;
  std::array<pkcs11::CallStat, kStages> stages_;
  std::array<std::atomic<std::uint64_t>, validation::kReasons> verifications_{};
  std::array<std::atomic<std::uint64_t>, 3> revocations_{};  // by revocation::Kind
  std::atomic<std::uint64_t> confusions_{0};  // the token calls' histogram, for the stages
};

}  // namespace hsmsignd::metrics
