#include "revocation/revocations.h"

namespace hsmsignd::revocation {

Revocations::Revocations(std::unique_ptr<Store> store, std::chrono::seconds fail_open_for, Clock clock)
    : store_(std::move(store)), fail_open_for_(fail_open_for), clock_(std::move(clock)) {
  down_since_ = clock_().time_since_epoch().count();
  down_reason_ = "not started";
}

Revocations::~Revocations() { stop(); }

void Revocations::start(StateSink on_state, EntrySink on_entry) {
  on_entry_ = std::move(on_entry);
  store_->start({[this](const Entry& e) {
                   set_.add(e);
                   if (on_entry_) on_entry_(e);
                 },
                 [this, on_state = std::move(on_state)](bool up, const std::string& reason) {
                   {
                     std::lock_guard lock(reason_mutex_);
                     down_reason_ = up ? std::string() : reason;
                   }
                   if (!up && (up_.load() || !reported_)) {
                     down_since_ = clock_().time_since_epoch().count();
                     outages_.fetch_add(1);
                   }
                   up_ = up;
                   if (up) loaded_ = true;  // a store reports up only once it has told what it holds
                   reported_ = true;
                   if (on_state) on_state(up, reason);
                 }});
  started_ = true;
}

void Revocations::stop() {
  if (started_) store_->stop();
  started_ = false;
}

void Revocations::revoke(std::vector<Entry> entries, std::function<void(std::vector<bool>)> done) {
  if (entries.empty()) return done({});
  struct Batch {
    std::mutex mutex;  // the store may answer entries on different threads
    std::vector<bool> durable;
    std::size_t left;
    std::function<void(std::vector<bool>)> done;
  };
  auto batch = std::make_shared<Batch>();
  batch->durable.assign(entries.size(), false);
  batch->left = entries.size();
  batch->done = std::move(done);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Entry copy = entries[i];
    store_->put(std::move(entries[i]), [this, batch, i, entry = std::move(copy)](bool durable) {
      // In force only once durable: a revocation the store lost must not seem to hold until a restart.
      if (durable) {
        set_.add(entry);
        if (on_entry_) on_entry_(entry);
      }
      std::unique_lock lock(batch->mutex);
      batch->durable[i] = durable;
      if (--batch->left != 0) return;
      lock.unlock();
      batch->done(std::move(batch->durable));
    });
  }
}

Answer Revocations::check(const TokenFacts& token) const {
  if (set_.revoked(token)) return Answer::revoked;
  if (up_.load()) return Answer::not_revoked;
  // Failing open on a set that was never loaded would accept every revoked token after a restart.
  if (!loaded_.load()) return Answer::unavailable;
  const auto down_for = clock_().time_since_epoch() - std::chrono::steady_clock::duration(down_since_.load());
  return fail_open_for_.count() > 0 && down_for < fail_open_for_ ? Answer::not_revoked : Answer::unavailable;
}

void Revocations::purge(std::int64_t now) {
  set_.purge(now);
  store_->purge(now);
}

std::string Revocations::down_reason() const {
  std::lock_guard lock(reason_mutex_);
  return down_reason_;
}

}  // namespace hsmsignd::revocation
