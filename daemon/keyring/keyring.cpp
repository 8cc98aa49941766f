#include "keyring/keyring.h"

#include <pthread.h>

#include <openssl/rand.h>

#include <algorithm>
#include <set>
#include <utility>

#include "jose/jwk.h"
#include "jwks/jwks_document.h"
#include "keys.h"
#include "log/log.h"

namespace hsmsignd::keyring {
namespace {

// The token is read again at least this often (reread_interval() may choose more often), so that daemons
// sharing it see each other's keys even when no transition of their own is due.
constexpr auto kLongestSleep = std::chrono::seconds(30);
// After generating a key, look again this soon: a second daemon may have generated one at the same
// time, and the race is settled (the loser destroyed) before either key is due to sign.
constexpr auto kSettle = std::chrono::seconds(1);
constexpr auto kRaceWindow = std::chrono::milliseconds(250);
constexpr auto kLongestBackoff = std::chrono::seconds(300);
// How long half a key pair may be another daemon's generation in progress: EC and EdDSA keys take
// milliseconds, RSA keys (4096 bits in software) can take many seconds.
constexpr auto kOrphanGrace = std::chrono::seconds(10);
constexpr auto kOrphanGraceRsa = std::chrono::seconds(120);

signing::VerifyPolicy verify_policy(const config::Config& c) {
  return c.token.verify_signatures == config::VerifyPolicy::all ? signing::VerifyPolicy::all
                                                                 : signing::VerifyPolicy::sampled;
}

// Logs what keys_of refused, at each look at the token: an operator sees why a key with the keyset's label
// is not in the JWKS.
void log_refused(const std::string& keyset, const KeysetKeys& found) {
  for (const auto& r : found.refused)
    log::error("key_refused", {{"keyset", keyset}, {"label", r.object->label}, {"reason", std::string(r.reason)}});
}

std::string kid_of(pkcs11::TokenOps& token, const pkcs11::KeyObject& object, Algorithm algorithm) {
  auto pub = token.export_public_key(object.id, algorithm);
  return pub ? jose::thumbprint(*pub) : std::string();
}

}  // namespace

std::chrono::seconds reread_interval(const config::Config& config) {
  return std::clamp<std::chrono::seconds>(config.jwks.max_age, std::chrono::seconds(1), kLongestSleep);
}

std::optional<std::string_view> refusal(const pkcs11::KeyObject& object, Algorithm algorithm,
                                        const pkcs11::CustodyPolicy& custody) {
  if (!custody.trustworthy(object.custody)) return "custody";
  if (object.public_key == 0) return "no public key object";
  if (!pkcs11::fits(object, algorithm)) return "wrong type or size";
  return std::nullopt;
}

KeysetKeys keys_of(std::string_view keyset, Algorithm algorithm, const std::vector<pkcs11::KeyObject>& objects,
                   const pkcs11::CustodyPolicy& custody) {
  KeysetKeys out;
  for (const auto& object : objects) {
    auto label = KeyLabel::parse(object.label);
    if (!label || label->keyset != keyset) continue;
    if (auto reason = refusal(object, algorithm, custody))
      out.refused.push_back({&object, *reason});
    else
      out.keys.push_back({&object, std::move(*label)});
  }
  return out;
}

std::vector<KeyRecord> KeysetKeys::records() const {
  std::vector<KeyRecord> out;
  for (const auto& k : keys) out.push_back({k.object->id, k.label});
  return out;
}

const Key* View::active_key(std::string_view keyset) const {
  auto it = active.find(keyset);
  return it == active.end() ? nullptr : &keys[it->second];
}

const Key* View::find(std::string_view kid) const {
  for (const auto& k : keys)
    if (k.kid == kid) return &k;
  return nullptr;
}

Keyring::Keyring(pkcs11::TokenOps& token, const config::Config& config, Clock clock, EventSink events)
    : token_(token), config_(config), clock_(std::move(clock)), events_(std::move(events)) {
  view_.store(std::make_shared<View>());
}

Keyring::~Keyring() { stop(); }

pkcs11::Result<Key> Keyring::open_key(const config::KeysetConfig& keyset, const pkcs11::KeyObject& object,
                                      const KeyLabel& label) {
  auto& signer = signers_[object.id];
  if (!signer) {
    auto public_key = token_.export_public_key(object.id, keyset.algorithm);
    if (!public_key) return public_key.error();
    auto checked = signing::CheckedSigner::make(object.id, std::move(*public_key), verify_policy(config_));
    if (!checked) return checked.error();
    signer = std::move(*checked);
  }
  Key key;
  key.public_key = signer->public_key();
  key.kid = jose::thumbprint(key.public_key);
  key.keyset = keyset.name;
  key.algorithm = keyset.algorithm;
  key.usage = keyset.usage;
  key.rotation = keyset.rotation;
  key.id = object.id;
  key.label = object.label;
  key.created = label.created;
  key.signer = signer;
  return key;
}

pkcs11::Status Keyring::generate(const config::KeysetConfig& keyset, TimePoint activates, TimePoint now) {
  Bytes id(16);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) return pkcs11::Error::refused("no randomness for a key id");
  // The schedule is in the label, set by the same call that makes the key: no crash can split them.
  const std::string label = KeyLabel{keyset.name, activates, now}.str();
  auto key = token_.generate_key_pair({keyset.algorithm, keyset.rsa_bits, id, label});
  if (!key) return key.error();
  if (!custody_policy(config_).trustworthy(key->custody)) {
    (void)token_.destroy_key(id);
    return pkcs11::Error::refused("the token generated a key without the custody attributes asked for");
  }
  events_({"keygen", keyset.name, kid_of(token_, *key, keyset.algorithm), label});
  return {};
}

pkcs11::Status Keyring::reconcile() { return reconcile_at(clock_()); }

pkcs11::Status Keyring::reconcile_at(TimePoint now) {
  last_read_ = now;
  auto view = std::make_shared<View>();
  std::vector<Event> destroyed;  // reported after the publication that retires them
  std::string failure;
  TimePoint next = TimePoint::max();
  auto status = [&]() -> pkcs11::Status {
    view->keys.clear();
    destroyed.clear();
    failure.clear();
    next = TimePoint::max();
    auto objects = token_.list_keys();
    if (!objects) return objects.error();

    // Half a key pair (a crash while generating or destroying) is never published; once it is older
    // than kOrphanGrace it is removed. The grace matters: another daemon on the token may be between
    // the two halves of C_GenerateKeyPair, which SoftHSM creates one after the other.
    auto publics = token_.list_public_keys();
    if (!publics) return publics.error();
    auto half = [&](const Bytes& id, const std::string& label_text, bool has_other_half) {
      auto label = KeyLabel::parse(label_text);
      if (!label || has_other_half) return;
      const config::KeysetConfig* keyset = config_.keyset(label->keyset);
      const bool slow = keyset == nullptr || key_type(keyset->algorithm) == KeyType::RSA;
      const auto grace = slow ? kOrphanGraceRsa : kOrphanGrace;
      if (now - label->created < grace) {
        next = std::min(next, label->created + grace);  // look again as soon as it may be removed
        return;
      }
      if (token_.destroy_key(id)) destroyed.push_back({"destroy", label->keyset, {}, "half a key pair: " + label_text});
    };
    for (const auto& p : *publics)
      half(p.id, p.label, std::any_of(objects->begin(), objects->end(), [&](const auto& o) { return o.id == p.id; }));
    for (const auto& o : *objects) half(o.id, o.label, o.public_key != 0);

    const auto previous = view_.load();
    for (const auto& keyset : config_.keysets) {
      bool relisted = false, generated = false;
      for (int round = 0; round < 3; ++round) {
        const auto found = keys_of(keyset.name, keyset.algorithm, *objects, custody_policy(config_));
        log_refused(keyset.name, found);
        Plan p = plan(keyset, found.records(), now);
        auto find = [&](const Bytes& id) {
          return std::find_if(found.keys.begin(), found.keys.end(), [&](const auto& f) { return f.object->id == id; });
        };

        for (const auto& id : p.destroy) {
          auto it = find(id);
          const std::string label = it != found.keys.end() ? it->object->label : std::string();
          const std::string kid = it != found.keys.end() ? kid_of(token_, *it->object, keyset.algorithm) : std::string();
          if (auto ok = token_.destroy_key(id); !ok)
            failure = "destroying " + label + ": " + ok.error().what();
          else
            destroyed.push_back({"destroy", keyset.name, kid, label});
        }
        auto relist = [&]() -> pkcs11::Status {
          auto again = token_.list_keys();
          if (!again) return again.error();
          *objects = std::move(*again);
          return {};
        };
        // The active key we had is not in this listing: another process may be changing the token
        // under us. Look once more before making a new active key.
        if (p.generate && *p.generate <= now && previous->active_key(keyset.name) && !relisted) {
          relisted = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          if (auto ok = relist(); !ok) return ok;
          continue;
        }
        if (p.generate && !generated) {
          generated = true;
          if (auto made = generate(keyset, *p.generate, now); !made) {
            failure = "generating a key for keyset " + keyset.name + ": " + made.error().what();
          } else {
            // Plan again with the new key, a moment later so that a daemon racing us has made its key
            // too: the loser is then destroyed by both before anyone can publish it for long.
            std::this_thread::sleep_for(kRaceWindow);
            if (auto ok = relist(); !ok) return ok;
            next = std::min(next, now + kSettle);
            continue;
          }
        }
        for (const auto& live : p.live) {
          auto it = find(live.id);
          auto key = open_key(keyset, *it->object, it->label);
          if (!key) return key.error();
          key->schedule = live.schedule;
          view->keys.push_back(std::move(*key));
        }
        next = std::min(next, p.next);
        break;
      }
    }
    return {};
  }();
  if (!status) {
    // The current keys go on signing; the failure is reported once, not at every retry.
    const std::string reason = "reading the token: " + status.error().what();
    bool report = false;
    {
      std::lock_guard lock(mutex_);
      report = degraded_ != reason;
      degraded_ = reason;
    }
    if (report) events_({"error", {}, {}, reason});
    return status;
  }

  std::vector<jwks::PublishedKey> published;
  for (std::size_t i = 0; i < view->keys.size(); ++i) {
    const Key& k = view->keys[i];
    if (k.schedule.state == KeyState::active) view->active[k.keyset] = i;
    // A JWT verifier trusts every key of the JWKS; a tls key signs digests anyone with the sign
    // operation chose, so it must never be one of them.
    if (k.usage == config::Usage::jwt) published.push_back({k.kid, k.public_key});
  }
  for (const auto& keyset : config_.keysets)
    if (!view->active.contains(keyset.name) && failure.empty()) failure = "keyset " + keyset.name + " has no active key";
  auto doc = jwks::make_document(published);
  view->jwks = std::move(doc.json);
  view->etag = std::move(doc.etag);
  std::erase_if(signers_, [&](const auto& entry) {
    return std::none_of(view->keys.begin(), view->keys.end(), [&](const Key& k) { return k.id == entry.first; });
  });
  next_ = next;
  publish(std::move(view));
  for (const auto& e : destroyed) events_(e);
  {
    std::lock_guard lock(mutex_);
    degraded_ = failure;
  }
  if (!failure.empty()) {
    events_({"error", {}, {}, failure});
    const auto* v = view_.load().get();
    for (const auto& keyset : config_.keysets)
      if (!v->active.contains(keyset.name)) return pkcs11::Error::refused(failure);
  }
  return {};
}

void Keyring::publish(std::shared_ptr<View> view) {
  auto before = view_.load();
  // State changes since the last picture are the lifecycle's events.
  for (const auto& k : view->keys) {
    const Key* old = before->find(k.kid);
    if (k.schedule.state == KeyState::active && (!old || old->schedule.state != KeyState::active))
      events_({"activate", k.keyset, k.kid, {}});
  }
  for (const auto& old : before->keys)
    if (!view->find(old.kid)) events_({"retire", old.keyset, old.kid, "left the JWKS"});
  const bool changed = before->etag != view->etag || before->keys.size() != view->keys.size() ||
                       !std::equal(before->keys.begin(), before->keys.end(), view->keys.begin(),
                                   [](const Key& a, const Key& b) { return a.kid == b.kid && a.schedule.state == b.schedule.state; });
  view_.store(view);
  if (changed && publisher_) publisher_(*view);
}

std::string Keyring::degraded() const {
  std::lock_guard lock(mutex_);
  return degraded_;
}

void Keyring::start(Publisher publish) {
  publisher_ = std::move(publish);
  if (publisher_) publisher_(*view_.load());
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-keys");
    run();
  });
}

void Keyring::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Keyring::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_all();
}

void Keyring::reread_now() {
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_asked_ < std::chrono::seconds(1)) return;
    last_asked_ = now;
    reread_asked_ = true;
  }
  wake_.notify_all();
}

void Keyring::run() {
  std::chrono::seconds backoff{1};
  bool failing = false;
  const auto every = reread_interval(config_);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    while (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
    if (stopping_) break;
    const TimePoint now = clock_();
    // The periodic re-read is a deadline counted from the last read, so that tasks posted to this thread
    // (admin operations, Status List reservations) cannot keep postponing it.
    const bool asked = std::exchange(reread_asked_, false);
    const TimePoint due =
        asked ? now : std::min(next_, last_read_ + (failing ? std::chrono::seconds(kLongestSleep) : every));
    if (now >= due) {
      lock.unlock();
      const bool ok = static_cast<bool>(reconcile_at(now)) && degraded().empty();
      lock.lock();
      if (!ok) {
        // A failed step is retried with backoff; the current keys go on signing meanwhile.
        next_ = now + backoff;
        backoff = std::min<std::chrono::seconds>(backoff * 2, kLongestBackoff);
      } else {
        backoff = std::chrono::seconds(1);
      }
      failing = !ok;
      continue;
    }
    // Wake at the transition's own instant, not up to a second after it: daemons sharing a token then
    // change keys within milliseconds of each other.
    const auto until_due = std::chrono::system_clock::time_point(due) - std::chrono::system_clock::now();
    const auto sleep = std::clamp<std::chrono::system_clock::duration>(until_due + std::chrono::milliseconds(5),
                                                                      std::chrono::milliseconds(5), kLongestSleep);
    wake_.wait_for(lock, sleep, [&] { return stopping_ || reread_asked_ || !tasks_.empty(); });
  }
}

TimePoint Keyring::later_than(TimePoint t) {
  // Labels hold whole seconds: a replacement made in the second its predecessor activated would tie
  // with it, so wait for the next second (this happens only when rotations follow each other quickly).
  TimePoint now = clock_();
  while (now <= t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = clock_();
  }
  return now;
}

pkcs11::Status Keyring::retire_now(const Key& key) {
  const config::KeysetConfig* keyset = config_.keyset(key.keyset);
  if (keyset != nullptr && keyset->destroy_retired) return token_.destroy_key(key.id);
  auto label = KeyLabel::parse(key.label);
  if (!label) return pkcs11::Error::refused("the key's label is not hsmsignd's");
  label->retired = true;
  return token_.set_label(key.id, label->str());
}

void Keyring::rotate(std::string keyset_name, bool immediate, std::function<void(pkcs11::Result<std::string>)> done) {
  post([this, keyset_name = std::move(keyset_name), immediate, done = std::move(done)]() mutable {
    const config::KeysetConfig* keyset = config_.keyset(keyset_name);
    if (keyset == nullptr) return done(pkcs11::Error::not_found("no keyset \"" + keyset_name + "\""));
    if (keyset->rotation == config::Rotation::manual) immediate = true;
    const TimePoint now = clock_();
    auto view = view_.load();
    if (!immediate) {
      for (const auto& k : view->keys)
        if (k.keyset == keyset_name && k.schedule.state == KeyState::pending) return done(k.kid);  // already under way
    }
    const Key* active = view->active_key(keyset_name);
    const TimePoint at = immediate && active ? later_than(active->schedule.activates) : now;
    const TimePoint activates = immediate ? at : now + keyset->prepublish;
    auto made = generate(*keyset, activates, at);
    if (!made) return done(made.error());
    if (auto ok = reconcile_at(at); !ok) return done(ok.error());
    for (const auto& k : view_.load()->keys)
      if (k.keyset == keyset_name && k.schedule.activates == activates) return done(k.kid);
    done(pkcs11::Error::not_found("the new key is not on the token"));
  });
}

void Keyring::retire(std::string kid, std::function<void(pkcs11::Status)> done) {
  post([this, kid = std::move(kid), done = std::move(done)] {
    auto view = view_.load();
    const Key* key = view->find(kid);
    if (key == nullptr) return done(pkcs11::Error::not_found("no published key with kid " + kid));
    const Key target = *key;
    if (target.schedule.state == KeyState::active) {
      // Replace it first: the keyset must never be left without an active key.
      const config::KeysetConfig* keyset = config_.keyset(target.keyset);
      const TimePoint now = later_than(target.schedule.activates);
      auto made = generate(*keyset, now, now);
      if (!made) return done(made.error());
    }
    auto ok = retire_now(target);
    if (!ok) return done(ok.error());
    done(reconcile_at(clock_()));
  });
}

}  // namespace hsmsignd::keyring

namespace hsmsignd::keyring {

void Keyring::destroy(std::string kid, std::function<void(pkcs11::Status)> done) {
  post([this, kid = std::move(kid), done = std::move(done)] {
    if (const Key* key = view_.load()->find(kid))
      return done(pkcs11::Error::refused("key " + kid + " is " + std::string(name(key->schedule.state)) +
                                         ": retire it first"));
    auto found = [&]() -> pkcs11::Result<std::optional<Event>> {
      auto objects = token_.list_keys();
      if (!objects) return objects.error();
      for (const auto& o : *objects) {
        auto label = KeyLabel::parse(o.label);
        const config::KeysetConfig* keyset = label ? config_.keyset(label->keyset) : nullptr;
        if (keyset == nullptr || kid_of(token_, o, keyset->algorithm) != kid) continue;
        if (auto ok = token_.destroy_key(o.id); !ok) return ok.error();
        return std::optional<Event>(Event{"destroy", keyset->name, kid, o.label});
      }
      return std::optional<Event>();
    }();
    if (!found) return done(found.error());
    if (!*found) return done(pkcs11::Error::not_found("no retired key with kid " + kid + " on the token"));
    events_(**found);
    done({});
  });
}

}  // namespace hsmsignd::keyring
