#include "revocation/redis_store.h"

#include <chrono>

#include "revocation/redis_subscriber.h"
#include "revocation/redis_writer.h"

namespace hsmsignd::revocation {
namespace {

std::int64_t system_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RedisStore::RedisStore(RedisAddress address, std::string password, std::int64_t clock_tolerance,
                       std::int64_t longest_max_ttl, std::function<std::int64_t()> now)
    : link_{std::move(address), std::move(password), {clock_tolerance, longest_max_ttl},
            now ? std::move(now) : std::function<std::int64_t()>(system_now)} {
  writer_ = std::make_unique<RedisWriter>(
      link_, [this](bool up, const std::string& reason) { side_changed(Side::writer, up, reason); });
}

RedisStore::~RedisStore() { stop(); }

void RedisStore::start(Listener listener) {
  listener_ = std::move(listener);
  subscriber_ = std::make_unique<RedisSubscriber>(
      link_,
      [this](const Entry& e) {
        if (listener_.learned) listener_.learned(e);
      },
      [this](bool up, const std::string& reason) { side_changed(Side::subscriber, up, reason); });
  // The subscriber first: the start-up state and the entries in force come from its first attempt.
  subscriber_->start();
  writer_->start();
}

void RedisStore::put(Entry entry, std::function<void(bool)> done) { writer_->put(std::move(entry), std::move(done)); }

void RedisStore::purge(std::int64_t) {}

void RedisStore::stop() {
  // The writer first: what was put is finished while the subscriber still listens.
  writer_->stop();
  if (subscriber_) subscriber_->stop();
}

std::uint64_t RedisStore::malformed_messages() const { return subscriber_ ? subscriber_->malformed_messages() : 0; }

void RedisStore::side_changed(Side side, bool up, const std::string& reason) {
  std::lock_guard lock(state_mutex_);
  (side == Side::writer ? writer_up_ : subscriber_up_) = up;
  const bool store_up = writer_up_ && subscriber_up_;
  if (reported_ == store_up) return;
  reported_ = store_up;
  if (listener_.state) listener_.state(store_up, store_up ? std::string() : reason);
}

}  // namespace hsmsignd::revocation
