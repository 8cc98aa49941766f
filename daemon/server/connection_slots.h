// One listener's connections, and which of them wait idle for a request, oldest first. At the cap the
// oldest idle connection gives way to the new one: a flood of idle connections must not lock out a
// client that comes with work. Used on the I/O thread only (the daemon runs one), so it takes no lock.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <memory>

namespace hsmsignd::server {

class ConnectionSlots {
 public:
  explicit ConnectionSlots(std::size_t cap) : cap_(cap) {}

  using Idle = std::list<std::function<void()>>::iterator;

  // Room for one more connection: true if under the cap, or once the oldest idle one was told to close.
  bool make_room() {
    if (open_ < cap_) return true;
    if (idle_.empty()) return false;
    auto evict = std::move(idle_.front());
    idle_.pop_front();
    evict();
    return true;
  }
  void opened() { ++open_; }
  void closed() { --open_; }

  // `evict` closes the connection; it is called at most once, and only while the entry is registered.
  Idle idle(std::function<void()> evict) { return idle_.insert(idle_.end(), std::move(evict)); }
  void busy(Idle entry) { idle_.erase(entry); }

 private:
  std::size_t cap_;
  std::size_t open_ = 0;
  std::list<std::function<void()>> idle_;
};

}  // namespace hsmsignd::server
