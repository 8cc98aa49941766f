// Counters for every Cryptoki function this process calls: how often, how many failed, how long they
// took. Kept per function name, for /metrics and for tests that must prove a call was (not) repeated.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace hsmsignd::pkcs11 {

struct CallStatSnapshot;

struct CallStat {
  // Upper bounds of the latency histogram, in microseconds (the last bucket is everything above).
  static constexpr std::array<std::uint64_t, 12> kBucketsUs{10, 25, 50, 100, 250, 500, 1000,
                                                             2500, 5000, 10000, 50000, 250000};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> total_ns{0};
  std::array<std::atomic<std::uint64_t>, kBucketsUs.size() + 1> buckets{};

  void record(std::uint64_t ns, bool failed);
  CallStatSnapshot snapshot() const;  // `function` left empty
};

// The counters of one function, created on first use and never freed (references stay valid).
CallStat& call_stat(const std::string& function);

struct CallStatSnapshot {
  std::string function;
  std::uint64_t calls, errors, total_ns;
  std::array<std::uint64_t, CallStat::kBucketsUs.size() + 1> buckets;
};
std::vector<CallStatSnapshot> call_stats();

}  // namespace hsmsignd::pkcs11
