// Which keys each keyset has on the token, in which state, and which one signs. The token is the truth:
// the keyring is rebuilt from it (labels carry the schedule), never from a file that could disagree.
// A lifecycle thread makes the transitions on time; admin operations run on that thread too, so token
// calls never run on an I/O thread and two transitions never race inside one daemon.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"
#include "keyring/lifecycle.h"
#include "keyring/planner.h"
#include "keys.h"
#include "token_ops.h"
#include "signing/checked_signer.h"

namespace hsmsignd::keyring {

struct Key {
  std::string kid;  // RFC 7638 thumbprint of the public key
  std::string keyset;
  Algorithm algorithm = Algorithm::ES256;
  config::Usage usage = config::Usage::jwt;  // tls keys are never in the JWKS nor verified as JWTs
  config::Rotation rotation = config::Rotation::scheduled;
  Bytes id;  // CKA_ID
  std::string label;
  TimePoint created;
  Schedule schedule;
  PublicKey public_key;
  std::shared_ptr<signing::CheckedSigner> signer;
};

// Which key objects on the token are a keyset's keys. The keyring builds its keys from `keys` alone, and
// the custody report uses the same selection, so that the two can never disagree about a key's state.
struct KeysetKeys {
  struct Candidate {
    const pkcs11::KeyObject* object;
    KeyLabel label;
  };
  struct Refused {
    const pkcs11::KeyObject* object;
    std::string_view reason;  // custody, no public key object, wrong type or size
  };
  std::vector<Candidate> keys;   // what plan() schedules: labelled for the keyset and usable by it
  std::vector<Refused> refused;  // labelled for the keyset, but never used or published whatever the label says

  std::vector<KeyRecord> records() const;
};

// Why this key object may not sign with `algorithm` (the first reason of custody by `custody`'s rule, no
// public key object, wrong type or size), or nullopt when it may.
std::optional<std::string_view> refusal(const pkcs11::KeyObject& object, Algorithm algorithm,
                                        const pkcs11::CustodyPolicy& custody);

// The key objects labelled for `keyset`, split into those its `algorithm` may use and those it refuses.
// (A name and an algorithm, not a KeysetConfig: the audit key's keyset is not configured.) The result
// points into `objects`.
KeysetKeys keys_of(std::string_view keyset, Algorithm algorithm, const std::vector<pkcs11::KeyObject>& objects,
                   const pkcs11::CustodyPolicy& custody);

// The custody rule of this configuration ([token] require_local).
inline pkcs11::CustodyPolicy custody_policy(const config::Config& config) { return {config.token.require_local}; }

// How often the lifecycle thread reads the token again even when no transition of its own is due, so that
// daemons sharing a token (several hosts on one network HSM) publish each other's keys: every
// jwks.max_age, at most every 30 s. A verifier's JWKS is then at most one max_age behind this host, and
// this host at most one interval behind the token. While a step fails, its backoff decides, but the token
// is still read every 30 s.
std::chrono::seconds reread_interval(const config::Config& config);

// An immutable picture of the keyring; readers hold it as long as they like while the keyring moves on.
struct View {
  std::vector<Key> keys;  // pending, active and retiring keys of every configured keyset
  std::map<std::string, std::size_t, std::less<>> active;  // keyset -> index into keys
  std::string jwks;  // the JWK Set document of the jwt keys among `keys`
  std::string etag;

  const Key* active_key(std::string_view keyset) const;
  const Key* find(std::string_view kid) const;
};

// What happened to a key, for the log and the audit trail.
struct Event {
  std::string type;  // keygen, activate, retire, destroy, error
  std::string keyset, kid, detail;
};

class Keyring {
 public:
  using Clock = std::function<TimePoint()>;
  using EventSink = std::function<void(const Event&)>;
  using Publisher = std::function<void(const View&)>;  // runs after every change of the published keys

  Keyring(pkcs11::TokenOps& token, const config::Config& config, Clock clock, EventSink events);
  ~Keyring();

  // Brings the token in line with the schedule now, on the calling thread (start-up). Fails only when
  // the token cannot be read or a keyset is left without an active key.
  pkcs11::Status reconcile();
  std::shared_ptr<const View> view() const { return view_.load(); }

  // Starts the lifecycle thread; `publish` then runs on it after every change.
  void start(Publisher publish);
  void stop();

  // The reason the last lifecycle step failed, or empty. Issuance goes on with the current keys.
  std::string degraded() const;

  // Admin operations, run on the lifecycle thread; `done` runs there too.
  // rotate: a new key, prepublished (or, with `immediate`, active at once); answers its kid. A manual
  // keyset's new key is always active at once: it has no prepublication (it is in no JWKS).
  void rotate(std::string keyset, bool immediate, std::function<void(pkcs11::Result<std::string>)> done);
  // retire: the key stops signing (an active key is replaced first) and leaves the JWKS now.
  void retire(std::string kid, std::function<void(pkcs11::Status)> done);
  // destroy: removes a retired key (one kept because destroy_retired is off) from the token for good.
  // A key still published (pending, active, retiring) must be retired first.
  void destroy(std::string kid, std::function<void(pkcs11::Status)> done);
  // Runs `task` on the lifecycle thread: for other token work that must stay off the I/O thread.
  void post(std::function<void()> task);
  // Reads the token again now, not at the next interval: a signer could not find a key this daemon still
  // publishes (another host retired and destroyed it). At most once a second.
  void reread_now();

 private:
  pkcs11::Status reconcile_at(TimePoint now);
  pkcs11::Status generate(const config::KeysetConfig& keyset, TimePoint activates, TimePoint now);
  pkcs11::Result<Key> open_key(const config::KeysetConfig& keyset, const pkcs11::KeyObject& object, const KeyLabel& label);
  pkcs11::Status retire_now(const Key& key);
  TimePoint later_than(TimePoint t);
  void publish(std::shared_ptr<View> view);
  void run();

  pkcs11::TokenOps& token_;
  const config::Config& config_;
  Clock clock_;
  EventSink events_;
  Publisher publisher_;
  std::atomic<std::shared_ptr<const View>> view_;
  // Signers are kept across reconciles so that a key's checked signer (and its EVP key) is built once.
  std::map<Bytes, std::shared_ptr<signing::CheckedSigner>> signers_;
  TimePoint next_ = TimePoint::min();
  TimePoint last_read_ = TimePoint::min();  // the last reconcile's `now`: the periodic re-read counts from it

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  bool reread_asked_ = false;                         // by reread_now(), under mutex_
  std::chrono::steady_clock::time_point last_asked_;  // likewise: at most one such read a second
  std::string degraded_;
  std::thread thread_;
};

}  // namespace hsmsignd::keyring
