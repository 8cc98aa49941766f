// Where revocations are kept durably: SQLite in the state folder (one host), or Redis (many hosts).
// A store only stores and tells what it learns; the in-memory set that answers lookups is the
// Revocations class's (revocations.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "revocation/entry.h"

namespace hsmsignd::revocation {

class Store {
 public:
  struct Listener {
    // Entries in force: every one at start (and, for a shared store, after each reconnect), then each one
    // another host stores. May run on the store's own threads.
    std::function<void(const Entry&)> learned;
    // Whether the store can be reached; `reason` says why not. Called on every change, and once at start.
    std::function<void(bool up, const std::string& reason)> state;
  };

  virtual ~Store() = default;

  // Loads what is in force (through `listener.learned`) and begins. Throws std::runtime_error when the
  // store cannot be used at all (a SQLite file that cannot be opened); a store that is only unreachable
  // now (Redis) starts down and says so through `listener.state`.
  virtual void start(Listener listener) = 0;
  // Stores `entry`; done(true) once it is durable (and, for a shared store, published to the other
  // hosts), done(false) when it could not be stored. `done` may run on the store's own thread.
  virtual void put(Entry entry, std::function<void(bool durable)> done) = 0;
  // Removes entries whose `expires` is before `now` (a shared store's keys expire by themselves).
  virtual void purge(std::int64_t now) = 0;
  // Finishes what was put, then stops.
  virtual void stop() = 0;
};

}  // namespace hsmsignd::revocation
