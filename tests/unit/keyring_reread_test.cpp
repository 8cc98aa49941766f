// The keyring's periodic re-read of the token (several hosts on one token): a key another daemon put on
// the token is published within reread_interval() (jwks.max_age, at most 30 s), even when nothing of this
// daemon's own is due and tasks keep arriving on the lifecycle thread. The token is an in-memory fake
// with software keys: no module, no daemon.
#include "keyring/keyring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "crypto/evp_key.h"
#include "software_keys.h"

namespace hsmsignd::keyring {
namespace {

using namespace std::chrono_literals;

TimePoint now_seconds() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

// A token that holds EC P-256 key pairs in memory, reporting the custody of keys born inside it. Another
// daemon's keys are added with put(); every call may come from the lifecycle thread.
class FakeToken final : public pkcs11::TokenOps {
 public:
  void put(Bytes id, std::string label) {
    std::lock_guard lock(mutex_);
    keys_[id] = {std::move(label), test::generate_key(Algorithm::ES256)};
  }
  int lists() const { return lists_.load(); }

  pkcs11::Result<std::vector<pkcs11::KeyObject>> list_keys() override {
    ++lists_;
    std::lock_guard lock(mutex_);
    std::vector<pkcs11::KeyObject> out;
    pkcs11::ObjectHandle handle = 1;
    for (const auto& [id, key] : keys_) {
      pkcs11::KeyObject o;
      o.id = id;
      o.label = key.label;
      o.type = KeyType::EC;
      o.bits = 256;
      o.private_key = handle++;
      o.public_key = handle++;
      o.custody = {.local = true, .never_extractable = true, .always_sensitive = true, .extractable = false,
                   .sensitive = true};
      out.push_back(std::move(o));
    }
    return out;
  }
  pkcs11::Result<std::vector<pkcs11::PublicObject>> list_public_keys() override {
    std::lock_guard lock(mutex_);
    std::vector<pkcs11::PublicObject> out;
    for (const auto& [id, key] : keys_) out.push_back({id, key.label});
    return out;
  }
  pkcs11::Result<pkcs11::KeyObject> generate_key_pair(const pkcs11::KeySpec& spec) override {
    put(spec.id, spec.label);
    auto all = list_keys();
    for (auto& o : *all)
      if (o.id == spec.id) return o;
    return pkcs11::Error::not_found("generated key vanished");
  }
  pkcs11::Result<PublicKey> export_public_key(ByteView id, Algorithm algorithm) override {
    std::lock_guard lock(mutex_);
    auto it = keys_.find(Bytes(id.begin(), id.end()));
    if (it == keys_.end()) return pkcs11::Error::not_found("no such key");
    auto pub = crypto::from_evp(it->second.key.get(), algorithm);
    if (!pub) return pkcs11::Error::refused("from_evp failed");
    return *pub;
  }
  pkcs11::Status set_label(ByteView id, const std::string& label) override {
    std::lock_guard lock(mutex_);
    keys_.at(Bytes(id.begin(), id.end())).label = label;
    return {};
  }
  pkcs11::Status destroy_key(ByteView id) override {
    std::lock_guard lock(mutex_);
    keys_.erase(Bytes(id.begin(), id.end()));
    return {};
  }

 private:
  struct Entry {
    std::string label;
    crypto::EvpPkeyPtr key;
  };
  mutable std::mutex mutex_;
  std::map<Bytes, Entry> keys_;
  std::atomic<int> lists_{0};
};

Bytes id(std::uint8_t n) { return Bytes(16, n); }

config::Config config_with_max_age(std::chrono::seconds max_age) {
  config::Config c;
  c.jwks.max_age = max_age;
  config::KeysetConfig k;
  k.name = "default";
  k.algorithm = Algorithm::ES256;
  k.rotation_period = 1000s;
  k.prepublish = 100s;
  k.retire_after = 300s;
  c.keysets.push_back(k);
  return c;
}

// The daemon under test: its keyring on a token that holds one active key, made by another host ten seconds
// ago.
struct ThisHost {
  explicit ThisHost(std::chrono::seconds max_age) : config(config_with_max_age(max_age)) {
    const TimePoint t0 = now_seconds();
    token.put(id(1), KeyLabel{"default", t0 - 10s, t0 - 10s}.str());
  }
  config::Config config;
  FakeToken token;
  Keyring keyring{token, config, now_seconds, [](const Event&) {}};
};

TEST(KeyringReread, IntervalIsMaxAgeAtMostThirtySeconds) {
  EXPECT_EQ(reread_interval(config_with_max_age(1s)), 1s);
  EXPECT_EQ(reread_interval(config_with_max_age(7s)), 7s);
  EXPECT_EQ(reread_interval(config_with_max_age(30s)), 30s);
  EXPECT_EQ(reread_interval(config_with_max_age(300s)), 30s);  // the default max_age: as before, 30 s
  EXPECT_EQ(reread_interval(config_with_max_age(86400s)), 30s);
}

// Another host rotates: its pending key appears on the token while this daemon has nothing due for 900 s.
// It must be published within the interval (1 s here, plus the label clock's whole second), although a task
// is posted to the lifecycle thread every 100 ms (each used to restart the wait for the periodic re-read).
TEST(KeyringReread, AnotherDaemonsKeyIsPublishedWithinTheIntervalWhileTasksKeepArriving) {
  ThisHost host(1s);
  FakeToken& token = host.token;
  Keyring& keyring = host.keyring;
  ASSERT_TRUE(keyring.reconcile());
  ASSERT_EQ(keyring.view()->keys.size(), 1u);
  std::atomic<int> publications{0};
  keyring.start([&](const View&) { ++publications; });

  std::atomic<bool> stop_posting{false};
  std::atomic<int> tasks_run{0};
  std::thread poster([&] {
    while (!stop_posting) {
      keyring.post([&] { ++tasks_run; });
      std::this_thread::sleep_for(100ms);
    }
  });

  // Tasks are flowing before the other host's key appears, and go on until it is seen.
  while (tasks_run.load() < 3) std::this_thread::sleep_for(10ms);
  const auto put_at = std::chrono::steady_clock::now();
  token.put(id(2), KeyLabel{"default", now_seconds() + 100s, now_seconds()}.str());  // "host A" rotates
  std::chrono::steady_clock::duration seen{};
  while (std::chrono::steady_clock::now() - put_at < 5s) {
    if (keyring.view()->keys.size() == 2) {
      seen = std::chrono::steady_clock::now() - put_at;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  stop_posting = true;
  poster.join();
  keyring.stop();

  const auto view = keyring.view();
  ASSERT_EQ(view->keys.size(), 2u) << "the other daemon's key was not published within 5 s";
  EXPECT_LE(seen, 3000ms) << "interval 1 s (counted from a whole second, so at most 1 s), plus a busy machine";
  EXPECT_EQ(view->active_key("default")->id, id(1));  // the new key is pending: it signs only at its time
  EXPECT_NE(view->jwks.find(view->keys[1].kid), std::string::npos) << "the pending key is in the JWKS";
  EXPECT_GE(publications.load(), 2);  // at start, and with the new key
}

// The default max_age (5 min) keeps the old pace: no extra reads of the token within a few seconds.
TEST(KeyringReread, NoExtraReadsBeforeTheIntervalIsDue) {
  ThisHost host(300s);
  FakeToken& token = host.token;
  Keyring& keyring = host.keyring;
  ASSERT_TRUE(keyring.reconcile());
  const int after_start = token.lists();
  keyring.start(nullptr);
  std::this_thread::sleep_for(1500ms);
  keyring.stop();
  EXPECT_EQ(token.lists(), after_start);
}

// A signer that cannot find a key asks for a read at once (another host retired and destroyed it): with
// the default 30 s interval, the token is read within a fraction of a second, and only once for a burst.
TEST(KeyringReread, ReadNowDoesNotWaitForTheIntervalAndIsPaced) {
  ThisHost host(300s);
  FakeToken& token = host.token;
  Keyring& keyring = host.keyring;
  ASSERT_TRUE(keyring.reconcile());
  keyring.start(nullptr);
  std::this_thread::sleep_for(1100ms);  // the start and its own reads are over
  const int before = token.lists();
  token.put(id(2), KeyLabel{"default", now_seconds() + 100s, now_seconds()}.str());
  for (int i = 0; i < 20; ++i) keyring.reread_now();
  const auto asked = std::chrono::steady_clock::now();
  while (keyring.view()->keys.size() < 2 && std::chrono::steady_clock::now() - asked < 5s)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(200ms);
  keyring.stop();
  EXPECT_EQ(keyring.view()->keys.size(), 2u) << "the other host's key after reread_now()";
  EXPECT_LE(std::chrono::steady_clock::now() - asked, 1500ms);
  EXPECT_EQ(token.lists() - before, 1) << "twenty asks within a second, one read";
}

}  // namespace
}  // namespace hsmsignd::keyring
