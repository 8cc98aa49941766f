// The revocation store shared by many hosts: Redis, with the layout of the spec (redis_layout.h) that
// verifiers other than hsmsignd read too. Two threads, each with its own connection: a writer that
// stores and publishes what this host revokes, and a subscriber that learns what the others do. A
// Redis that cannot be reached is a state (reported through the listener), never a reason to stop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "revocation/redis_address.h"
#include "revocation/redis_link.h"
#include "revocation/store.h"

namespace hsmsignd::revocation {

class RedisWriter;
class RedisSubscriber;

class RedisStore final : public Store {
 public:
  // `password` empty: no AUTH. `clock_tolerance` and `longest_max_ttl` (seconds) make the keys'
  // EXAT and the learned entries' `expires`; `now` (unix seconds) is the system clock unless given.
  RedisStore(RedisAddress address, std::string password, std::int64_t clock_tolerance,
             std::int64_t longest_max_ttl, std::function<std::int64_t()> now = {});
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Never throws for an unreachable Redis: the store starts down, says why, and keeps trying. The
  // first attempt is made before start() returns, so an up Redis has been read in full by then.
  void start(Listener listener) override;
  // done(false) at once when the store is stopped.
  void put(Entry entry, std::function<void(bool durable)> done) override;
  // Nothing to do: every key expires by itself (EXAT), and every write purges the index.
  void purge(std::int64_t now) override;
  void stop() override;

  // Messages on the channel that were not an entry (ignored).
  std::uint64_t malformed_messages() const;

 private:
  enum class Side { writer, subscriber };
  // The store is up when both connections are; the listener hears of each change of that, once.
  void side_changed(Side side, bool up, const std::string& reason);

  RedisLink link_;
  Listener listener_;
  std::unique_ptr<RedisWriter> writer_;
  std::unique_ptr<RedisSubscriber> subscriber_;

  std::mutex state_mutex_;  // held while the listener's state() runs, so that changes arrive in order
  bool writer_up_ = true;   // until a write or a connection fails
  bool subscriber_up_ = false;
  std::optional<bool> reported_;
};

}  // namespace hsmsignd::revocation
