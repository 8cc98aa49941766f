#include "call_stats.h"

#include <map>
#include <memory>
#include <mutex>

namespace hsmsignd::pkcs11 {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<CallStat>, std::less<>> stats;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void CallStat::record(std::uint64_t ns, bool failed) {
  calls.fetch_add(1, std::memory_order_relaxed);
  if (failed) errors.fetch_add(1, std::memory_order_relaxed);
  total_ns.fetch_add(ns, std::memory_order_relaxed);
  std::size_t i = 0;
  while (i < kBucketsUs.size() && ns > kBucketsUs[i] * 1000) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
}

CallStatSnapshot CallStat::snapshot() const {
  CallStatSnapshot snap{{}, calls.load(), errors.load(), total_ns.load(), {}};
  for (std::size_t i = 0; i < snap.buckets.size(); ++i) snap.buckets[i] = buckets[i].load();
  return snap;
}

CallStat& call_stat(const std::string& function) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto& slot = r.stats[function];
  if (!slot) slot = std::make_unique<CallStat>();
  return *slot;
}

std::vector<CallStatSnapshot> call_stats() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<CallStatSnapshot> out;
  for (const auto& [name, s] : r.stats) {
    out.push_back(s->snapshot());
    out.back().function = name;
  }
  return out;
}

}  // namespace hsmsignd::pkcs11
