// Learns what other hosts store, on one thread with its own connection: SUBSCRIBE first, then read
// everything in force (through a second, short-lived connection, since a subscribed one takes no other
// command), so that nothing stored in between is missed; then each message as it comes. A lost
// connection is retried with backoff and followed by the same subscribe-then-resync.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "revocation/entry.h"
#include "revocation/redis_connection.h"
#include "revocation/redis_link.h"

namespace hsmsignd::revocation {

class RedisSubscriber {
 public:
  using Learned = std::function<void(const Entry&)>;
  // `link` must outlive the subscriber.
  RedisSubscriber(const RedisLink& link, Learned learned, RedisLinkReport report);
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // The first attempt runs on the caller's thread, so that a Redis that is up has been read in full
  // and reported up before start() returns; one that is down is reported down. Then the thread.
  void start();
  // Noticed within a read timeout (250 ms) or at once while waiting to reconnect.
  void stop();

  // Messages on the channel that were not an entry: ignored, and counted here.
  std::uint64_t malformed_messages() const { return malformed_.load(std::memory_order_relaxed); }

 private:
  void run(std::stop_token stop, std::optional<RedisConnection> connection);
  // Connected, subscribed and resynced, or nullopt and why not.
  std::optional<RedisConnection> subscribe(std::string& why);
  bool resync(std::string& why);
  // Reads messages until the connection fails (false, with why) or a stop is requested (true).
  bool listen(RedisConnection& connection, const std::stop_token& stop, std::string& why);
  // A reply on the subscribed connection; false when it is not one the protocol allows there.
  bool on_reply(const redisReply& reply, bool& pong);

  const RedisLink& link_;
  const Learned learned_;
  const RedisLinkReport report_;
  std::atomic<std::uint64_t> malformed_{0};
  std::jthread thread_;
};

}  // namespace hsmsignd::revocation
