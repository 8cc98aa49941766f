// The Redis revocation store against a real redis-server (one throw-away server per test, on a Unix
// socket): the documented layout that other verifiers read, the channel, two stores learning from each
// other, and what happens when Redis is absent, crashes, freezes or wants a password.
#include "revocation/redis_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "redis_client.h"
#include "redis_server.h"
#include "revocation/redis_address.h"

namespace hsmsignd::revocation {
namespace {

using namespace std::chrono_literals;
using hsmsignd::testing::RedisClient;
using hsmsignd::testing::RedisServer;
using Clock = std::chrono::steady_clock;

// Long enough for a loaded CI machine; what takes this long is a hang, not slowness.
constexpr auto kPatience = 20s;
constexpr std::int64_t kTolerance = 10;
constexpr std::int64_t kMaxTtl = 3600;
constexpr const char* kIss = "https://issuer.example";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RedisAddress unix_address(const std::filesystem::path& socket) {
  return parse_redis_address("unix:" + socket.string()).address.value();
}

Entry jti(std::string name, std::int64_t exp, std::string iss = kIss) {
  return {Kind::jti, std::move(iss), std::move(name), exp, 0};
}
Entry subject(std::string sub, std::int64_t before, std::string iss = kIss) {
  return {Kind::subject, std::move(iss), std::move(sub), before, 0};
}
Entry keyset(std::string name, std::int64_t before) { return {Kind::keyset, "", std::move(name), before, 0}; }

std::int64_t expected_expires(const Entry& e) {
  return e.kind == Kind::jti ? e.at + kTolerance : e.at + kMaxTtl + kTolerance;
}

bool same_entry(const Entry& a, const Entry& b) {
  return a.kind == b.kind && a.iss == b.iss && a.name == b.name && a.at == b.at && a.expires == b.expires;
}

std::string describe(const Entry& e) {
  return "{" + std::to_string(static_cast<int>(e.kind)) + " iss=" + e.iss + " name=" + e.name +
         " at=" + std::to_string(e.at) + " expires=" + std::to_string(e.expires) + "}";
}

// What a store told its listener, for the test thread to wait on.
class Recorder {
 public:
  Store::Listener listener() {
    return {[this](const Entry& e) {
              std::lock_guard lock(mutex_);
              learned_.push_back({e, Clock::now()});
              changed_.notify_all();
            },
            [this](bool up, const std::string& reason) {
              std::lock_guard lock(mutex_);
              states_.emplace_back(up, reason);
              changed_.notify_all();
            }};
  }

  // Until the last state reported is `up`.
  bool wait_state(bool up, std::chrono::milliseconds patience = kPatience) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, patience, [&] { return !states_.empty() && states_.back().first == up; });
  }
  // Until an entry like `e` (expires included) was learned; when, or nullopt.
  std::optional<Clock::time_point> wait_learned(const Entry& e, std::chrono::milliseconds patience = kPatience) {
    std::unique_lock lock(mutex_);
    std::optional<Clock::time_point> when;
    changed_.wait_for(lock, patience, [&] {
      for (const auto& [learned, at] : learned_)
        if (same_entry(learned, e)) {
          when = at;
          return true;
        }
      return false;
    });
    return when;
  }
  bool has_learned(const Entry& e) {
    std::lock_guard lock(mutex_);
    return std::any_of(learned_.begin(), learned_.end(), [&](const auto& l) { return same_entry(l.first, e); });
  }
  std::vector<std::pair<bool, std::string>> states() {
    std::lock_guard lock(mutex_);
    return states_;
  }
  // The states as one line, for a failure's message.
  std::string history() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [up, reason] : states_) out += up ? "[up] " : "[down: " + reason + "] ";
    return out.empty() ? "no state reported" : out;
  }
  std::vector<Entry> learned() {
    std::lock_guard lock(mutex_);
    std::vector<Entry> out;
    for (const auto& l : learned_) out.push_back(l.first);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<Entry, Clock::time_point>> learned_;
  std::vector<std::pair<bool, std::string>> states_;
};

// A put's answer, waited for with a bound; a put that is never answered fails the test.
std::optional<bool> put_and_wait(Store& store, Entry e, std::chrono::milliseconds patience = kPatience) {
  auto promise = std::make_shared<std::promise<bool>>();
  auto answer = promise->get_future();
  store.put(std::move(e), [promise](bool durable) { promise->set_value(durable); });
  if (answer.wait_for(patience) != std::future_status::ready) return std::nullopt;
  return answer.get();
}

std::string key_of(const Entry& e) {
  switch (e.kind) {
    case Kind::jti:
      return "hsmsignd:revoked:" + e.iss + ":" + e.name;
    case Kind::subject:
      return "hsmsignd:notbefore:" + e.iss + ":" + e.name;
    case Kind::keyset:
      return "hsmsignd:keyset-notbefore:" + e.name;
  }
  return {};
}

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.start(); }

  std::unique_ptr<RedisStore> make_store(const std::filesystem::path& socket, std::string password = {}) {
    return std::make_unique<RedisStore>(unix_address(socket), std::move(password), kTolerance, kMaxTtl);
  }
  std::unique_ptr<RedisStore> make_store() { return make_store(server_.socket()); }
  // A store, started, that reports itself up.
  std::unique_ptr<RedisStore> started_store(Recorder& recorder) {
    auto store = make_store();
    store->start(recorder.listener());
    EXPECT_TRUE(recorder.wait_state(true)) << "the store never came up: " << recorder.history();
    return store;
  }

  RedisServer server_;
};

TEST_F(RedisStoreTest, EachKindIsStoredUnderItsDocumentedKeyWithItsValueAndExpiry) {
  Recorder recorder;
  auto store = started_store(recorder);
  const std::int64_t now = unix_now();
  const std::vector<Entry> entries = {jti("jti-1", now + 600), subject("user-7", now), keyset("payments", now)};
  for (const auto& e : entries) ASSERT_EQ(put_and_wait(*store, e), true) << describe(e);

  RedisClient client(server_.socket());
  for (const auto& e : entries) {
    SCOPED_TRACE(describe(e));
    EXPECT_EQ(client.get(key_of(e)), std::to_string(e.at));
    // EXAT, to the second: the rule of the spec, not a TTL counted from the write.
    EXPECT_EQ(client.integer({"EXPIRETIME", key_of(e)}), expected_expires(e));
  }
  // The literal names, in case key_of() above and the store agreed on a mistake.
  EXPECT_EQ(client.get("hsmsignd:revoked:https://issuer.example:jti-1"), std::to_string(now + 600));
  EXPECT_EQ(client.get("hsmsignd:notbefore:https://issuer.example:user-7"), std::to_string(now));
  EXPECT_EQ(client.get("hsmsignd:keyset-notbefore:payments"), std::to_string(now));
  // The index that resync reads: one member per key, scored by its EXAT.
  auto score = client.command({"ZSCORE", "hsmsignd:index", R"(["jti","https://issuer.example","jti-1"])"});
  ASSERT_EQ(score->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(score->str), std::to_string(now + 600 + kTolerance));
  EXPECT_EQ(client.integer({"ZCARD", "hsmsignd:index"}), 3);
  store->stop();
}

TEST_F(RedisStoreTest, AValueOnlyEverMovesLater) {
  Recorder recorder;
  auto store = started_store(recorder);
  const std::int64_t now = unix_now();
  RedisClient client(server_.socket());
  for (const auto& [later, earlier] : {std::pair{subject("user-1", now), subject("user-1", now - 100)},
                                       std::pair{keyset("ks", now), keyset("ks", now - 100)},
                                       std::pair{jti("j", now + 900), jti("j", now + 300)}}) {
    SCOPED_TRACE(describe(later));
    ASSERT_EQ(put_and_wait(*store, later), true);
    ASSERT_EQ(put_and_wait(*store, earlier), true);  // covered by what is stored: nothing to do
    EXPECT_EQ(client.get(key_of(later)), std::to_string(later.at));
    EXPECT_EQ(client.integer({"EXPIRETIME", key_of(later)}), expected_expires(later));
    Entry latest = later;
    latest.at += 50;
    ASSERT_EQ(put_and_wait(*store, latest), true);
    EXPECT_EQ(client.get(key_of(later)), std::to_string(latest.at));
    EXPECT_EQ(client.integer({"EXPIRETIME", key_of(later)}), expected_expires(latest));
  }
  EXPECT_EQ(client.integer({"ZCARD", "hsmsignd:index"}), 3);
  store->stop();
}

TEST_F(RedisStoreTest, EachStoredEntryIsPublishedToAPlainSubscriber) {
  RedisClient subscriber(server_.socket());
  auto confirmed = subscriber.command({"SUBSCRIBE", "hsmsignd:revocations"});
  ASSERT_EQ(confirmed->type, REDIS_REPLY_ARRAY);

  Recorder recorder;
  auto store = started_store(recorder);
  const std::int64_t now = unix_now();
  const std::vector<Entry> entries = {jti("jti-9", now + 60), subject("user-9", now), keyset("ks-9", now)};
  for (const auto& e : entries) {
    SCOPED_TRACE(describe(e));
    ASSERT_EQ(put_and_wait(*store, e), true);
    auto message = subscriber.next_reply(10s);
    ASSERT_TRUE(message) << "no message within 10 s";
    ASSERT_EQ(message->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(message->elements, 3u);
    EXPECT_EQ(std::string(message->element[0]->str), "message");
    EXPECT_EQ(std::string(message->element[1]->str), "hsmsignd:revocations");
    const auto body = nlohmann::json::parse(std::string(message->element[2]->str, message->element[2]->len));
    const char* kind = e.kind == Kind::jti ? "jti" : e.kind == Kind::subject ? "subject" : "keyset";
    EXPECT_EQ(body, (nlohmann::json{{"kind", kind},
                                    {"iss", e.iss},
                                    {"name", e.name},
                                    {"at", e.at},
                                    {"expires", expected_expires(e)}}));
  }
  store->stop();
}

TEST_F(RedisStoreTest, TwoStoresLearnWhatTheOtherStoresWithinASecond) {
  Recorder ra, rb;
  auto a = started_store(ra);
  auto b = started_store(rb);
  const std::int64_t now = unix_now();
  std::vector<std::chrono::microseconds> latencies;
  for (int i = 0; i < 20; ++i) {
    const bool from_a = i % 2 == 0;
    Entry e = jti("cross-" + std::to_string(i), now + 600);
    const auto sent = Clock::now();
    (from_a ? *a : *b).put(e, {});
    e.expires = expected_expires(e);
    const auto learned = (from_a ? rb : ra).wait_learned(e, 5s);
    ASSERT_TRUE(learned) << "never learned " << describe(e);
    latencies.push_back(std::chrono::duration_cast<std::chrono::microseconds>(*learned - sent));
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf("cross-store latency (put on one store -> learned by the other), 20 entries: min %lld us, "
              "median %lld us, max %lld us\n",
              static_cast<long long>(latencies.front().count()),
              static_cast<long long>(latencies[latencies.size() / 2].count()),
              static_cast<long long>(latencies.back().count()));
  EXPECT_LT(latencies.back(), 1s);
  a->stop();
  b->stop();
}

TEST_F(RedisStoreTest, AStoreStartedBeforeRedisReportsDownThenUpAndLearnsWhatWasStoredMeanwhile) {
  const std::int64_t now = unix_now();
  const Entry before_outage = subject("stored-while-a-was-away", now);
  {
    Recorder rb;
    auto b = started_store(rb);
    ASSERT_EQ(put_and_wait(*b, before_outage), true);
    b->stop();
  }
  server_.stop();

  Recorder ra;
  auto a = make_store();
  a->start(ra.listener());
  // Reported before start() returned: the first attempt is synchronous.
  auto states = ra.states();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_FALSE(states[0].first);
  EXPECT_NE(states[0].second.find("cannot connect"), std::string::npos) << states[0].second;
  // A put while Redis is down is refused, never acknowledged.
  EXPECT_EQ(put_and_wait(*a, jti("while-down", now + 60)), false);

  server_.start();
  Recorder rb;
  auto b = started_store(rb);
  const Entry meanwhile = jti("stored-after-restart", now + 600);
  ASSERT_EQ(put_and_wait(*b, meanwhile), true);

  EXPECT_TRUE(ra.wait_state(true)) << "the store did not come up by itself";
  Entry expect_old = before_outage, expect_new = meanwhile;
  expect_old.expires = expected_expires(before_outage);
  expect_new.expires = expected_expires(meanwhile);
  EXPECT_TRUE(ra.wait_learned(expect_old)) << "not learned through resync";
  EXPECT_TRUE(ra.wait_learned(expect_new));
  states = ra.states();
  EXPECT_EQ(states.size(), 2u) << "down once, then up once";
  EXPECT_EQ(put_and_wait(*a, jti("after-up", now + 60)), true);
  a->stop();
  b->stop();
}

TEST_F(RedisStoreTest, AKillNineLosesNoAcknowledgedPutAndTheStoreComesBackByItself) {
  Recorder recorder;
  auto store = started_store(recorder);
  const std::int64_t now = unix_now();

  enum Phase { before_kill, outage };
  struct Result {
    Entry entry;
    Phase phase;
    bool durable;
  };
  std::mutex mutex;
  std::vector<Result> results;
  std::atomic<Phase> phase{before_kill};
  std::atomic<bool> go_on{true};
  std::atomic<int> acknowledged{0}, refused_in_outage{0};
  std::vector<std::thread> putters;
  for (int t = 0; t < 3; ++t) {
    putters.emplace_back([&, t] {
      for (int i = 0; go_on; ++i) {
        const Phase at_put = phase;
        Entry e = jti("flood-" + std::to_string(t) + "-" + std::to_string(i), now + 600);
        const auto durable = put_and_wait(*store, e);
        ASSERT_TRUE(durable.has_value()) << "a put was never answered";
        if (*durable) ++acknowledged;
        if (at_put == outage && !*durable) ++refused_in_outage;
        std::lock_guard lock(mutex);
        results.push_back({e, at_put, *durable});
      }
    });
  }
  const auto wait_for = [](const std::function<bool()>& condition) {
    const auto deadline = Clock::now() + kPatience;
    while (!condition()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  };
  ASSERT_TRUE(wait_for([&] { return acknowledged >= 300; }));
  server_.kill();
  phase = outage;
  EXPECT_TRUE(recorder.wait_state(false)) << "the outage was not reported";
  ASSERT_TRUE(wait_for([&] { return refused_in_outage >= 30; }));
  go_on = false;
  for (auto& p : putters) p.join();

  std::size_t outage_puts = 0;
  for (const auto& r : results) {
    if (r.phase != outage) continue;
    ++outage_puts;
    EXPECT_FALSE(r.durable) << "acknowledged while Redis was dead: " << describe(r.entry);
  }
  EXPECT_GE(outage_puts, 30u);

  server_.start();
  EXPECT_TRUE(recorder.wait_state(true)) << "the store did not come back by itself";
  EXPECT_EQ(put_and_wait(*store, jti("after-restart", now + 600)), true);

  RedisClient client(server_.socket());
  std::size_t checked = 0;
  for (const auto& r : results) {
    if (!r.durable) continue;
    ++checked;
    EXPECT_EQ(client.get(key_of(r.entry)), std::to_string(r.entry.at))
        << "acknowledged but lost: " << describe(r.entry);
  }
  std::printf("kill -9: %zu acknowledged puts all present after restart, %zu puts refused during the outage\n",
              checked, outage_puts);
  const auto states = recorder.states();
  ASSERT_GE(states.size(), 3u);
  EXPECT_TRUE(states[0].first);
  EXPECT_FALSE(states[1].first);
  EXPECT_TRUE(states.back().first);
  store->stop();
}

TEST_F(RedisStoreTest, TheFirstPutAfterRedisRestartedWhileTheWriterWasIdleSucceeds) {
  Recorder recorder;
  auto store = started_store(recorder);
  ASSERT_EQ(put_and_wait(*store, jti("before", unix_now() + 60)), true);  // the writer has a connection
  server_.kill();
  ASSERT_TRUE(recorder.wait_state(false));
  server_.start();
  ASSERT_TRUE(recorder.wait_state(true));
  // The writer's connection died with the old server and no put has told it yet: this one must not
  // pay for that with a refusal.
  EXPECT_EQ(put_and_wait(*store, jti("after", unix_now() + 60)), true);
  EXPECT_EQ(recorder.states().size(), 3u) << recorder.history();
  store->stop();
}

TEST_F(RedisStoreTest, AFrozenRedisIsReportedDownAndItsPutsFail) {
  Recorder recorder;
  auto store = started_store(recorder);
  // The writer connected: what finds out about the freeze is the subscriber, not a writer's connect.
  ASSERT_EQ(put_and_wait(*store, jti("warm", unix_now() + 60)), true);
  server_.freeze();
  // No write, no close: only the subscriber's PING finds out.
  EXPECT_TRUE(recorder.wait_state(false));
  EXPECT_EQ(put_and_wait(*store, jti("frozen", unix_now() + 60)), false);
  server_.thaw();
  EXPECT_TRUE(recorder.wait_state(true));
  EXPECT_EQ(put_and_wait(*store, jti("thawed", unix_now() + 60)), true);
  const auto states = recorder.states();
  ASSERT_FALSE(states.empty());
  bool saw_ping = false;
  for (const auto& [up, reason] : states) saw_ping = saw_ping || reason.find("PING") != std::string::npos ||
                                                    reason.find("timeout") != std::string::npos;
  EXPECT_TRUE(saw_ping) << "the reason should tell that Redis stopped answering";
  store->stop();
}

TEST(RedisStorePassword, AWrongOrMissingPasswordIsDownWithAReasonThatHoldsNoPassword) {
  const std::string password = "correct-horse-4711";
  const std::string wrong = "wrong-battery-0815";
  RedisServer server(password);
  server.start();
  for (const std::string& given : {wrong, std::string()}) {
    SCOPED_TRACE(given.empty() ? "no password" : "wrong password");
    Recorder recorder;
    RedisStore store(unix_address(server.socket()), given, kTolerance, kMaxTtl);
    store.start(recorder.listener());
    const auto states = recorder.states();
    ASSERT_EQ(states.size(), 1u);
    EXPECT_FALSE(states[0].first);
    const std::string& reason = states[0].second;
    EXPECT_FALSE(reason.empty());
    EXPECT_EQ(reason.find(password), std::string::npos) << reason;
    EXPECT_EQ(reason.find(wrong), std::string::npos) << reason;
    EXPECT_NE(reason.find(given.empty() ? "NOAUTH" : "WRONGPASS"), std::string::npos) << reason;
    EXPECT_EQ(put_and_wait(store, jti("refused", unix_now() + 60)), false);
    for (const auto& [up, why] : recorder.states()) {
      EXPECT_EQ(why.find(password), std::string::npos) << why;
      EXPECT_EQ(why.find(wrong), std::string::npos) << why;
    }
    store.stop();
  }
  Recorder recorder;
  RedisStore store(unix_address(server.socket()), password, kTolerance, kMaxTtl);
  store.start(recorder.listener());
  EXPECT_TRUE(recorder.wait_state(true));
  EXPECT_EQ(put_and_wait(store, jti("accepted", unix_now() + 60)), true);
  store.stop();
}

TEST_F(RedisStoreTest, AfterAReconnectResyncLearnsWhatAnotherStoreStoredMeanwhile) {
  // A reaches Redis through a link the test can cut, as a network would be.
  const auto link = server_.dir() / "link.sock";
  std::filesystem::create_symlink(server_.socket(), link);
  Recorder ra;
  auto a = make_store(link);
  a->start(ra.listener());
  ASSERT_TRUE(ra.wait_state(true));

  std::filesystem::remove(link);
  {
    RedisClient admin(server_.socket());
    EXPECT_GE(admin.integer({"CLIENT", "KILL", "TYPE", "pubsub"}), 1);
  }
  ASSERT_TRUE(ra.wait_state(false));

  // B stores while A hears nothing: A is not subscribed, so only a resync can tell it.
  Recorder rb;
  auto b = started_store(rb);
  const std::int64_t now = unix_now();
  std::vector<Entry> meanwhile = {jti("missed-1", now + 600), subject("missed-2", now), keyset("missed-3", now)};
  for (auto& e : meanwhile) {
    ASSERT_EQ(put_and_wait(*b, e), true);
    e.expires = expected_expires(e);
  }
  for (const auto& e : meanwhile) EXPECT_FALSE(ra.has_learned(e)) << "learned while disconnected?";

  std::filesystem::create_symlink(server_.socket(), link);
  ASSERT_TRUE(ra.wait_state(true));
  // Resync runs before the state is reported up.
  for (const auto& e : meanwhile) EXPECT_TRUE(ra.has_learned(e)) << describe(e);
  a->stop();
  b->stop();
}

TEST_F(RedisStoreTest, ColonsInIssAndNamesRoundTripThroughResync) {
  const std::int64_t now = unix_now();
  std::vector<Entry> entries = {
      jti("urn:jti:1:2", now + 600, "https://issuer.example:8443/tenant:a"),
      // The same key name as the entry above: the layout's names are ambiguous, the index is not.
      jti("2", now + 600, "https://issuer.example:8443/tenant:a:urn:jti:1"),
      subject("user:42:x", now, "https://issuer.example:8443/tenant:a"),
      keyset("ks:1", now),
      jti("%s%n%x", now + 600, "iss with %d and spaces"),  // never a format string
  };
  {
    Recorder rb;
    auto b = started_store(rb);
    for (const auto& e : entries) ASSERT_EQ(put_and_wait(*b, e), true) << describe(e);
    b->stop();
  }
  Recorder rc;
  auto c = make_store();
  c->start(rc.listener());
  ASSERT_TRUE(rc.wait_state(true));
  // Read in full before start() returned.
  const auto learned = rc.learned();
  EXPECT_EQ(learned.size(), entries.size());
  for (auto& e : entries) {
    e.expires = expected_expires(e);
    EXPECT_TRUE(std::any_of(learned.begin(), learned.end(), [&](const Entry& l) { return same_entry(l, e); }))
        << describe(e);
  }
  c->stop();
}

TEST_F(RedisStoreTest, MalformedMessagesAreIgnoredAndCounted) {
  Recorder ra;
  auto a = started_store(ra);
  RedisClient client(server_.socket());
  for (const std::string& bad : {std::string("not json"),
                                std::string(R"({"kind":"bogus","iss":"x","name":"y","at":1,"expires":2})"),
                                std::string(R"({"kind":"jti","iss":"x","name":"y","at":"1","expires":2})"),
                                std::string(R"({"kind":"keyset","iss":"x","name":"y","at":1,"expires":2})")})
    client.command({"PUBLISH", "hsmsignd:revocations", bad});
  Entry good = jti("good", unix_now() + 60);
  client.command({"PUBLISH", "hsmsignd:revocations",
                  nlohmann::json{{"kind", "jti"}, {"iss", good.iss}, {"name", good.name}, {"at", good.at},
                                 {"expires", 1}}.dump()});
  good.expires = expected_expires(good);  // this host's rule, not the sender's `expires`
  EXPECT_TRUE(ra.wait_learned(good));
  EXPECT_EQ(a->malformed_messages(), 4u);
  EXPECT_EQ(ra.learned().size(), 1u);
  EXPECT_TRUE(ra.states().back().first) << "a bad message is not an outage";
  a->stop();
}

TEST_F(RedisStoreTest, AFloodOfPutsIsPipelinedAndEveryOneIsAnswered) {
  Recorder recorder;
  auto store = started_store(recorder);
  constexpr int kPuts = 5000;
  const std::int64_t now = unix_now();
  std::atomic<int> durable{0}, answered{0};
  std::mutex mutex;
  std::condition_variable all_answered;
  const auto start = Clock::now();
  for (int i = 0; i < kPuts; ++i)
    store->put(jti("many-" + std::to_string(i), now + 600), [&](bool ok) {
      if (ok) ++durable;
      std::lock_guard lock(mutex);
      if (++answered == kPuts) all_answered.notify_all();
    });
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(all_answered.wait_for(lock, kPatience, [&] { return answered == kPuts; }));
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  std::printf("%d puts stored in %lld ms\n", kPuts, static_cast<long long>(took.count()));
  EXPECT_EQ(durable, kPuts);
  RedisClient client(server_.socket());
  EXPECT_EQ(client.integer({"ZCARD", "hsmsignd:index"}), kPuts);
  store->stop();
}

TEST_F(RedisStoreTest, StopAnswersEveryPutAndRefusesLaterOnes) {
  Recorder recorder;
  auto store = started_store(recorder);
  constexpr int kPuts = 2000;
  std::vector<std::atomic<int>> calls(kPuts);
  const std::int64_t now = unix_now();
  for (int i = 0; i < kPuts; ++i)
    store->put(jti("stop-" + std::to_string(i), now + 600), [&calls, i](bool) { ++calls[i]; });
  const auto start = Clock::now();
  store->stop();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  std::printf("stop() with %d puts queued took %lld ms\n", kPuts, static_cast<long long>(took.count()));
  for (int i = 0; i < kPuts; ++i) ASSERT_EQ(calls[i].load(), 1) << "put " << i;
  EXPECT_EQ(put_and_wait(*store, jti("too-late", now + 600)), false);
}

TEST_F(RedisStoreTest, StopWithRedisDeadEndsWithinSecondsAndRefusesWhatIsQueued) {
  Recorder recorder;
  auto store = started_store(recorder);
  server_.freeze();  // the worst case: connections that neither answer nor close
  std::atomic<int> answered{0}, durable{0};
  for (int i = 0; i < 100; ++i)
    store->put(jti("dead-" + std::to_string(i), unix_now() + 600), [&](bool ok) {
      ++answered;
      if (ok) ++durable;
    });
  const auto start = Clock::now();
  store->stop();
  const auto took = Clock::now() - start;
  EXPECT_LT(took, 3s) << "stop() should give up on the queue after about a second";
  EXPECT_EQ(answered, 100);
  EXPECT_EQ(durable, 0);
  server_.thaw();
}

}  // namespace
}  // namespace hsmsignd::revocation
