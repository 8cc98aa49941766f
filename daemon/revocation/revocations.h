// Revocation as the API sees it: entries go to the store and, once durable, into the in-memory set
// every verification reads. Also whether the store can be reached, and what that means for answers
// (fail closed, or open for a bounded window on the last known set).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "revocation/revocation_set.h"
#include "revocation/store.h"

namespace hsmsignd::revocation {

enum class Answer { not_revoked, revoked, unavailable };

class Revocations {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // Called on every change of the store's reachability (on the store's thread).
  using StateSink = std::function<void(bool up, const std::string& reason)>;

  Revocations(std::unique_ptr<Store> store, std::chrono::seconds fail_open_for,
              Clock clock = [] { return std::chrono::steady_clock::now(); });
  ~Revocations();

  // Called for every entry that comes into force: loaded, learned from another host, or stored here.
  using EntrySink = std::function<void(const Entry&)>;

  // Loads what the store holds; throws std::runtime_error when it cannot be used at all.
  void start(StateSink on_state, EntrySink on_entry = {});
  void stop();

  // Stores every entry; once the store has answered for all, `done` tells which are durable and in force.
  void revoke(std::vector<Entry> entries, std::function<void(std::vector<bool> durable)> done);
  Answer check(const TokenFacts& token) const;
  void purge(std::int64_t now);

  bool up() const { return up_.load(); }
  // Whether the store has been read in full once: before, the set knows nothing and proves nothing.
  bool loaded() const { return loaded_.load(); }
  std::string down_reason() const;
  std::size_t entries() const { return set_.size(); }
  std::uint64_t outages() const { return outages_.load(); }

 private:
  std::unique_ptr<Store> store_;
  std::chrono::seconds fail_open_for_;
  Clock clock_;
  RevocationSet set_;
  EntrySink on_entry_;
  std::atomic<bool> up_{false};
  std::atomic<bool> loaded_{false};
  std::atomic<std::chrono::steady_clock::rep> down_since_{0};
  std::atomic<std::uint64_t> outages_{0};
  mutable std::mutex reason_mutex_;
  std::string down_reason_;
  bool reported_ = false;  // the store has said once whether it is up (stores report one change at a time)
  bool started_ = false;
};

}  // namespace hsmsignd::revocation
