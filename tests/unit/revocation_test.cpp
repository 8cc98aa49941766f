// The in-memory revocation set, the embedded SQLite store (a real file, reopened as a restart would), and
// the fail-closed rule, without a token or a daemon.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "revocation/revocations.h"
#include "revocation/sqlite_store.h"
#include "test_support.h"

namespace hsmsignd::revocation {
namespace {

using test::TempDir;

TEST(RevocationSet, AJtiIsRevokedOnlyForItsOwnIssuer) {
  RevocationSet set;
  set.add({Kind::jti, "https://a", "j1", 100, 110});
  EXPECT_TRUE(set.revoked({"https://a", "alice", "j1", "default", 50}));
  EXPECT_FALSE(set.revoked({"https://b", "alice", "j1", "default", 50}));
  EXPECT_FALSE(set.revoked({"https://a", "alice", "j2", "default", 50}));
}

TEST(RevocationSet, IssuerAndNameCannotBeSplitAnotherWay) {
  RevocationSet set;
  set.add({Kind::jti, "a:", "b", 100, 110});
  EXPECT_FALSE(set.revoked({"a", "s", ":b", "k", 0}));
  EXPECT_TRUE(set.revoked({"a:", "s", "b", "k", 0}));
}

TEST(RevocationSet, NotBeforeRevokesEarlierTokensOnlyAndOnlyMovesLater) {
  RevocationSet set;
  set.add({Kind::subject, "https://a", "alice", 1000, 2000});
  EXPECT_TRUE(set.revoked({"https://a", "alice", "x", "k", 999}));
  EXPECT_FALSE(set.revoked({"https://a", "alice", "x", "k", 1000}));
  EXPECT_FALSE(set.revoked({"https://a", "bob", "x", "k", 999}));
  set.add({Kind::subject, "https://a", "alice", 500, 1500});  // an earlier instant changes nothing
  EXPECT_TRUE(set.revoked({"https://a", "alice", "x", "k", 999}));
  set.add({Kind::keyset, "", "rsa", 1000, 2000});
  EXPECT_TRUE(set.revoked({"https://z", "anyone", "x", "rsa", 10}));
  EXPECT_FALSE(set.revoked({"https://z", "anyone", "x", "default", 10}));
}

TEST(RevocationSet, PurgeDropsWhatExpired) {
  RevocationSet set;
  set.add({Kind::jti, "i", "old", 100, 110});
  set.add({Kind::jti, "i", "new", 200, 210});
  EXPECT_EQ(set.purge(150), 1u);
  EXPECT_EQ(set.size(), 1u);
  EXPECT_TRUE(set.revoked({"i", "s", "new", "k", 0}));
}

struct Collected {
  std::vector<Entry> entries;
  std::vector<bool> states;
  Store::Listener listener() {
    return {[this](const Entry& e) { entries.push_back(e); }, [this](bool up, const std::string&) { states.push_back(up); }};
  }
};

bool put_and_wait(Store& store, Entry e) {
  std::promise<bool> done;
  store.put(std::move(e), [&](bool ok) { done.set_value(ok); });
  return done.get_future().get();
}

TEST(SqliteStore, WhatWasAcknowledgedIsThereAfterReopening) {
  TempDir dir;
  const auto file = dir.path() / "revocations.sqlite3";
  {
    SqliteStore store(file);
    Collected c;
    store.start(c.listener());
    EXPECT_EQ(c.states, std::vector<bool>{true});
    EXPECT_TRUE(c.entries.empty());
    EXPECT_TRUE(put_and_wait(store, {Kind::jti, "https://a", "j1", 100, 110, "https://l/default/0", 7}));
    EXPECT_TRUE(put_and_wait(store, {Kind::subject, "https://a", "alice", 1000, 2000}));
    EXPECT_TRUE(put_and_wait(store, {Kind::subject, "https://a", "alice", 900, 1900}));  // earlier: kept at 1000
    store.stop();
  }
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  SqliteStore again(file);
  Collected c;
  again.start(c.listener());
  ASSERT_EQ(c.entries.size(), 2u);
  for (const auto& e : c.entries) {
    if (e.kind == Kind::jti) {
      EXPECT_EQ(e.name, "j1");
      EXPECT_EQ(e.status_uri, "https://l/default/0");
      EXPECT_EQ(e.status_idx, 7);
    } else {
      EXPECT_EQ(e.at, 1000);
      EXPECT_EQ(e.expires, 2000);
    }
  }
}

TEST(SqliteStore, PurgeRemovesExpiredEntriesFromTheFile) {
  TempDir dir;
  const auto file = dir.path() / "revocations.sqlite3";
  {
    SqliteStore store(file);
    Collected c;
    store.start(c.listener());
    ASSERT_TRUE(put_and_wait(store, {Kind::jti, "i", "old", 100, 110}));
    ASSERT_TRUE(put_and_wait(store, {Kind::jti, "i", "new", 200, 210}));
    store.purge(150);
    ASSERT_TRUE(put_and_wait(store, {Kind::jti, "i", "later", 300, 310}));  // the purge ran before this batch ended
    store.stop();
  }
  SqliteStore again(file);
  Collected c;
  again.start(c.listener());
  std::vector<std::string> names;
  for (const auto& e : c.entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"later", "new"}));
}

TEST(SqliteStore, ManyConcurrentPutsAreBatchedAndAllDurable) {
  TempDir dir;
  const auto file = dir.path() / "revocations.sqlite3";
  constexpr int kPuts = 2000;
  {
    SqliteStore store(file);
    Collected c;
    store.start(c.listener());
    std::atomic<int> ok{0}, done{0};
    for (int i = 0; i < kPuts; ++i)
      store.put({Kind::jti, "i", "j" + std::to_string(i), 100, 110}, [&](bool durable) {
        ok += durable;
        ++done;
      });
    store.stop();  // finishes what was put
    EXPECT_EQ(done.load(), kPuts);
    EXPECT_EQ(ok.load(), kPuts);
  }
  SqliteStore again(file);
  Collected c;
  again.start(c.listener());
  EXPECT_EQ(c.entries.size(), static_cast<std::size_t>(kPuts));
}

// A store whose reachability the test sets: for the fail-closed rule, which is Revocations' own.
class SwitchedStore final : public Store {
 public:
  void start(Listener l) override { listener = std::move(l), listener.state(true, {}); }
  void put(Entry, std::function<void(bool)> done) override { done(up); }
  void purge(std::int64_t) override {}
  void stop() override {}
  void set(bool now_up) {
    up = now_up;
    listener.state(now_up, now_up ? "" : "gone");
  }
  Listener listener;
  bool up = true;
};

TEST(Revocations, FailsClosedWhenTheStoreIsDownUnlessWithinFailOpenFor) {
  for (const auto window : {std::chrono::seconds(0), std::chrono::seconds(30)}) {
    auto now = std::chrono::steady_clock::now();
    auto owned = std::make_unique<SwitchedStore>();
    SwitchedStore& store = *owned;
    Revocations r(std::move(owned), window, [&] { return now; });
    int outages_seen = 0;
    r.start([&](bool up, const std::string&) { outages_seen += !up; });
    std::promise<bool> stored;
    r.revoke({{Kind::jti, "i", "gone", 100, 110}}, [&](std::vector<bool> ok) { stored.set_value(ok == std::vector{true}); });
    ASSERT_TRUE(stored.get_future().get());
    const TokenFacts revoked{"i", "s", "gone", "k", 0}, other{"i", "s", "fine", "k", 0};
    EXPECT_EQ(r.check(other), Answer::not_revoked);
    store.set(false);
    EXPECT_EQ(r.outages(), 1u);
    EXPECT_EQ(outages_seen, 1);
    EXPECT_EQ(r.check(revoked), Answer::revoked);  // what is known to be revoked stays refused
    EXPECT_EQ(r.check(other), window.count() == 0 ? Answer::unavailable : Answer::not_revoked);
    now += window + std::chrono::seconds(1);
    EXPECT_EQ(r.check(other), Answer::unavailable);
    std::promise<bool> refused;
    r.revoke({{Kind::jti, "i", "x", 100, 110}}, [&](std::vector<bool> ok) { refused.set_value(ok == std::vector{true}); });
    EXPECT_FALSE(refused.get_future().get());
    EXPECT_EQ(r.check({"i", "s", "x", "k", 0}), Answer::unavailable);  // not stored, so not in force
    store.set(true);
    EXPECT_EQ(r.check(other), Answer::not_revoked);
  }
}

// A store that starts down (Redis at start-up) has told nothing: its empty set must not be trusted.
class DownAtStartStore final : public Store {
 public:
  void start(Listener l) override { listener = std::move(l), listener.state(false, "not reachable"); }
  void put(Entry e, std::function<void(bool)> done) override { done(e.name != "lost"); }
  void purge(std::int64_t) override {}
  void stop() override {}
  Listener listener;
};

TEST(Revocations, NeverFailsOpenOnASetThatWasNeverLoaded) {
  auto now = std::chrono::steady_clock::now();
  auto owned = std::make_unique<DownAtStartStore>();
  DownAtStartStore& store = *owned;
  Revocations r(std::move(owned), std::chrono::seconds(3600), [&] { return now; });
  r.start({});
  EXPECT_FALSE(r.loaded());
  EXPECT_EQ(r.check({"i", "s", "j", "k", 0}), Answer::unavailable);
  store.listener.state(true, {});
  EXPECT_TRUE(r.loaded());
  store.listener.state(false, "gone again");
  EXPECT_EQ(r.check({"i", "s", "j", "k", 0}), Answer::not_revoked);  // now the last known set, for fail_open_for
}

TEST(Revocations, TellsWhichEntriesOfABatchAreDurable) {
  Revocations r(std::make_unique<DownAtStartStore>(), std::chrono::seconds(0));
  r.start({});
  std::promise<std::vector<bool>> done;
  r.revoke({{Kind::jti, "i", "kept", 100, 110}, {Kind::jti, "i", "lost", 100, 110}},
           [&](std::vector<bool> durable) { done.set_value(durable); });
  EXPECT_EQ(done.get_future().get(), (std::vector<bool>{true, false}));
  EXPECT_EQ(r.entries(), 1u);
}

}  // namespace
}  // namespace hsmsignd::revocation
