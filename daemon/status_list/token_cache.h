// The signed Status List Tokens served, one per list: a list is signed again only when its bits changed
// (at most once a second) or its token is half way to its expiry, and by one request at a time, so a
// flood of GETs on the public listener costs at most one signature per list and second.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace hsmsignd::status_list {

struct SignedList {
  std::uint64_t version = 0;
  std::string token, etag;
  std::chrono::steady_clock::time_point signed_at{};
};

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TokenCache(std::chrono::seconds ttl) : ttl_(ttl) {}

  // The token to serve for list `id` at `version`, or nullopt when it must be signed anew.
  std::optional<SignedList> fresh(std::string_view id, std::uint64_t version, Clock::time_point now) const {
    std::lock_guard lock(mutex_);
    auto it = lists_.find(id);
    if (it == lists_.end()) return std::nullopt;
    const auto age = now - it->second.signed_at;
    if (age < std::chrono::seconds(1) || (it->second.version == version && age < ttl_ / 2)) return it->second;
    return std::nullopt;
  }
  // Whether this request is to sign list `id` now: false while another one is. Every true is followed by
  // one finished(id).
  bool start_signing(const std::string& id) {
    std::lock_guard lock(mutex_);
    return signing_.insert(id).second;
  }
  void finished(const std::string& id) {
    std::lock_guard lock(mutex_);
    signing_.erase(id);
  }
  // The last token signed for `id`, however old, for the requests that come while it is signed again.
  std::optional<SignedList> last(std::string_view id) const {
    std::lock_guard lock(mutex_);
    auto it = lists_.find(id);
    if (it == lists_.end()) return std::nullopt;
    return it->second;
  }

  void put(const std::string& id, SignedList list) {
    std::lock_guard lock(mutex_);
    auto& held = lists_[id];
    if (list.signed_at >= held.signed_at) held = std::move(list);
  }
  void forget_except(const std::function<bool(const std::string&)>& keep) {
    std::lock_guard lock(mutex_);
    std::erase_if(lists_, [&](const auto& item) { return !keep(item.first); });
  }

 private:
  std::chrono::seconds ttl_;
  mutable std::mutex mutex_;  // put runs on the audit writer's thread, the rest on the I/O thread
  std::map<std::string, SignedList, std::less<>> lists_;
  std::set<std::string, std::less<>> signing_;
};

}  // namespace hsmsignd::status_list
