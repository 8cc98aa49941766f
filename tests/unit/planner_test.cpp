// keyring::plan() with an injected clock: every transition of the key lifecycle exactly at its boundary
// and on both sides of it, a daemon that was down past a handover, racing daemons, and a clock that
// jumps forward several periods or steps backwards. Times are printed as seconds after kT0.
#include "keyring/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hsmsignd::keyring {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::seconds kPeriod = 1000s;
constexpr std::chrono::seconds kPrepublish = 100s;
constexpr std::chrono::seconds kRetireAfter = 300s;  // shorter than period − prepublish: one retiring key at most
constexpr TimePoint kT0{std::chrono::seconds(1'764'400'000)};

config::KeysetConfig keyset(bool destroy_retired = true) {
  config::KeysetConfig k;
  k.name = "default";
  k.algorithm = Algorithm::ES256;
  k.rotation_period = kPeriod;
  k.prepublish = kPrepublish;
  k.retire_after = kRetireAfter;
  k.destroy_retired = destroy_retired;
  return k;
}

// A 16-byte CKA_ID (like the daemon's) whose first byte orders it.
Bytes id(std::uint8_t n) {
  Bytes out(16, 0x5a);
  out[0] = n;
  return out;
}

KeyRecord key(std::uint8_t n, TimePoint activates, bool retired = false) {
  return {id(n), KeyLabel{"default", activates, activates - kPrepublish, retired}};
}

// Seconds after kT0, so that failure messages are readable.
long long at(TimePoint t) { return (t - kT0).count(); }
std::optional<long long> at(const std::optional<TimePoint>& t) {
  return t ? std::optional<long long>(at(*t)) : std::nullopt;
}

std::vector<Bytes> live_ids(const Plan& p) {
  std::vector<Bytes> out;
  for (const auto& l : p.live) out.push_back(l.id);
  return out;
}

std::vector<std::string> live_states(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& l : p.live) out.emplace_back(name(l.schedule.state));
  return out;
}

std::vector<Bytes> sorted(std::vector<Bytes> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const Plan::Live* live(const Plan& p, const Bytes& key_id) {
  for (const auto& l : p.live)
    if (l.id == key_id) return &l;
  return nullptr;
}

int active_count(const Plan& p) {
  return static_cast<int>(std::count_if(p.live.begin(), p.live.end(),
                                        [](const Plan::Live& l) { return l.schedule.state == KeyState::active; }));
}

using Strings = std::vector<std::string>;
using Ids = std::vector<Bytes>;

// --- a fresh keyset ---------------------------------------------------------------------------------

TEST(Planner, AFreshKeysetGeneratesAKeyActiveNow) {
  const TimePoint now = kT0;
  const Plan p = plan(keyset(), {}, now);
  EXPECT_EQ(at(p.generate), at(now));
  EXPECT_TRUE(p.live.empty());
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_LE(at(p.next), at(now)) << "a plan that generates looks again at once";
}

TEST(Planner, TheKeyItGeneratedIsActiveAndTheNextStepIsThePrepublication) {
  const Plan p = plan(keyset(), {key(1, kT0)}, kT0);
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod - kPrepublish));
  EXPECT_EQ(at(p.live[0].schedule.activates), 0);
  EXPECT_EQ(at(p.live[0].schedule.deactivates), at(kT0 + kPeriod)) << "planned handover";
  EXPECT_EQ(at(p.live[0].schedule.retires), at(kT0 + kPeriod + kRetireAfter));
}

// --- one active key around activates + period − prepublish --------------------------------------------

TEST(Planner, OneSecondBeforeThePrepublicationNothingIsGenerated) {
  const TimePoint now = kT0 + kPeriod - kPrepublish - 1s;
  const Plan p = plan(keyset(), {key(1, kT0)}, now);
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod - kPrepublish));
}

TEST(Planner, ExactlyAtThePrepublicationTheNextKeyIsGeneratedForActivatesPlusPeriod) {
  const TimePoint now = kT0 + kPeriod - kPrepublish;
  const Plan p = plan(keyset(), {key(1, kT0)}, now);
  EXPECT_EQ(at(p.generate), at(kT0 + kPeriod));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_LE(at(p.next), at(now));
}

TEST(Planner, AfterThePrepublicationTheNextKeyStillGetsAFullPrepublication) {
  for (auto late : {1s, 50s, kPrepublish}) {
    SCOPED_TRACE(late.count());
    const TimePoint now = kT0 + kPeriod - kPrepublish + late;
    const Plan p = plan(keyset(), {key(1, kT0)}, now);
    ASSERT_TRUE(p.generate);
    EXPECT_EQ(at(p.generate), at(std::max(kT0 + kPeriod, now + kPrepublish)));
    EXPECT_GE(at(*p.generate), at(now + kPrepublish)) << "a key must be published prepublish before it signs";
    EXPECT_EQ(live_states(p), (Strings{"active"}));
  }
}

TEST(Planner, ADaemonDownPastTheHandoverKeepsTheOldKeyActiveAndPrepublishesTheNext) {
  const TimePoint now = kT0 + kPeriod + 500s;
  const Plan p = plan(keyset(), {key(1, kT0)}, now);
  EXPECT_EQ(at(p.generate), at(now + kPrepublish)) << "not activated early just because it is late";
  EXPECT_EQ(live_states(p), (Strings{"active"})) << "the only key signs until a successor exists";
  EXPECT_TRUE(p.destroy.empty());
}

// --- a pending successor -----------------------------------------------------------------------------

TEST(Planner, APendingKeyMeansNothingIsGeneratedAndNextIsItsActivation) {
  for (auto now : {kT0 + kPeriod - kPrepublish, kT0 + kPeriod - kPrepublish + 1s, kT0 + kPeriod - 1s}) {
    SCOPED_TRACE(at(now));
    const Plan p = plan(keyset(), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
    EXPECT_EQ(at(p.generate), std::nullopt);
    EXPECT_EQ(live_ids(p), (Ids{id(1), id(2)}));
    EXPECT_EQ(live_states(p), (Strings{"active", "pending"}));
    EXPECT_TRUE(p.destroy.empty());
    EXPECT_EQ(at(p.next), at(kT0 + kPeriod));
    EXPECT_EQ(at(p.live[0].schedule.deactivates), at(kT0 + kPeriod));
    EXPECT_EQ(at(p.live[0].schedule.retires), at(kT0 + kPeriod + kRetireAfter));
  }
}

TEST(Planner, ThePlanDoesNotDependOnTheOrderTheTokenListsKeys) {
  const TimePoint now = kT0 + kPeriod + 10s;
  const Plan a = plan(keyset(), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
  const Plan b = plan(keyset(), {key(2, kT0 + kPeriod), key(1, kT0)}, now);
  EXPECT_EQ(live_ids(a), live_ids(b));
  EXPECT_EQ(live_states(a), live_states(b));
  EXPECT_EQ(at(a.next), at(b.next));
  EXPECT_EQ(live_ids(a), (Ids{id(1), id(2)})) << "oldest activation first";
}

TEST(Planner, ExactlyAtTheSuccessorsActivationTheOldKeyIsRetiring) {
  const TimePoint now = kT0 + kPeriod;
  const Plan p = plan(keyset(), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
  EXPECT_EQ(live_states(p), (Strings{"retiring", "active"}));
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(at(p.live[0].schedule.deactivates), at(kT0 + kPeriod));
  EXPECT_EQ(at(p.live[0].schedule.retires), at(kT0 + kPeriod + kRetireAfter));
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod + kRetireAfter)) << "the retirement comes before the next prepublication";
}

TEST(Planner, OneSecondBeforeItRetiresTheOldKeyIsStillPublished) {
  const TimePoint now = kT0 + kPeriod + kRetireAfter - 1s;
  const Plan p = plan(keyset(), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
  EXPECT_EQ(live_states(p), (Strings{"retiring", "active"}));
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod + kRetireAfter));
}

TEST(Planner, ExactlyAtRetiresTheOldKeyIsDestroyedWithDestroyRetired) {
  const TimePoint now = kT0 + kPeriod + kRetireAfter;
  const Plan p = plan(keyset(true), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_EQ(p.destroy, (Ids{id(1)}));
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_EQ(at(p.next), at(kT0 + 2 * kPeriod - kPrepublish));
}

TEST(Planner, ExactlyAtRetiresTheOldKeyIsOnlyDroppedWithoutDestroyRetired) {
  const TimePoint now = kT0 + kPeriod + kRetireAfter;
  const Plan p = plan(keyset(false), {key(1, kT0), key(2, kT0 + kPeriod)}, now);
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_EQ(at(p.next), at(kT0 + 2 * kPeriod - kPrepublish));
}

// --- keys an operator retired ------------------------------------------------------------------------

TEST(Planner, AnOperatorRetiredKeyIsDestroyedWithDestroyRetired) {
  const TimePoint now = kT0 + 20s;
  const Plan p = plan(keyset(true), {key(1, kT0, /*retired=*/true), key(2, kT0 + 10s)}, now);
  EXPECT_EQ(p.destroy, (Ids{id(1)}));
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_EQ(at(p.generate), std::nullopt);
}

TEST(Planner, AnOperatorRetiredKeyIsDroppedButKeptWithoutDestroyRetired) {
  const TimePoint now = kT0 + 20s;
  const Plan p = plan(keyset(false), {key(1, kT0, /*retired=*/true), key(2, kT0 + 10s)}, now);
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_EQ(at(p.generate), std::nullopt);
}

TEST(Planner, AnOperatorRetiredPendingKeyIsNeverPublished) {
  const TimePoint now = kT0 + kPeriod - 50s;
  const Plan p = plan(keyset(false), {key(1, kT0), key(2, kT0 + kPeriod, /*retired=*/true)}, now);
  EXPECT_EQ(live_ids(p), (Ids{id(1)}));
  EXPECT_EQ(at(p.generate), at(now + kPrepublish)) << "the retired successor does not count: a new one is due";
}

TEST(Planner, AKeysetWhoseOnlyKeyWasRetiredGetsANewActiveKeyNow) {
  const TimePoint now = kT0 + 20s;
  const Plan p = plan(keyset(false), {key(1, kT0, /*retired=*/true)}, now);
  EXPECT_EQ(at(p.generate), at(now));
  EXPECT_TRUE(p.live.empty());
}

// --- racing daemons ----------------------------------------------------------------------------------

TEST(Planner, OfTwoPendingKeysCloserThanPrepublishTheLaterIsDestroyed) {
  const TimePoint now = kT0 + kPeriod - kPrepublish + 5s;
  for (auto gap : {1s, kPrepublish - 1s}) {
    SCOPED_TRACE(gap.count());
    for (bool reversed : {false, true}) {
      // The later one gets the smaller CKA_ID: the activation decides first.
      std::vector<KeyRecord> keys{key(1, kT0), key(3, kT0 + kPeriod), key(2, kT0 + kPeriod + gap)};
      if (reversed) std::reverse(keys.begin(), keys.end());
      const Plan p = plan(keyset(), keys, now);
      EXPECT_EQ(p.destroy, (Ids{id(2)}));
      EXPECT_EQ(live_ids(p), (Ids{id(1), id(3)}));
      EXPECT_EQ(live_states(p), (Strings{"active", "pending"}));
      EXPECT_EQ(at(p.generate), std::nullopt);
      EXPECT_EQ(at(p.next), at(kT0 + kPeriod));
    }
  }
}

TEST(Planner, OfTwoPendingKeysWithTheSameActivationTheLargerIdIsDestroyed) {
  const TimePoint now = kT0 + kPeriod - kPrepublish;
  for (bool reversed : {false, true}) {
    std::vector<KeyRecord> keys{key(1, kT0), key(7, kT0 + kPeriod), key(4, kT0 + kPeriod)};
    if (reversed) std::reverse(keys.begin(), keys.end());
    // Two daemons in one destroy the same loser, whatever order their token lists the keys in.
    const Plan p = plan(keyset(), keys, now);
    EXPECT_EQ(p.destroy, (Ids{id(7)}));
    EXPECT_EQ(live_ids(p), (Ids{id(1), id(4)}));
    EXPECT_EQ(at(p.generate), std::nullopt);
  }
}

TEST(Planner, ARaceLoserIsDestroyedEvenWithoutDestroyRetired) {
  const TimePoint now = kT0 + kPeriod - kPrepublish;
  const Plan p = plan(keyset(false), {key(1, kT0), key(4, kT0 + kPeriod), key(7, kT0 + kPeriod)}, now);
  EXPECT_EQ(p.destroy, (Ids{id(7)})) << "it never signed and never will";
}

TEST(Planner, TwoPendingKeysExactlyHalfAPeriodApartAreBothKept) {
  const TimePoint now = kT0 + kPeriod - kPrepublish + 5s;
  const Plan p = plan(keyset(), {key(1, kT0), key(2, kT0 + kPeriod), key(3, kT0 + kPeriod + kPeriod / 2)}, now);
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(live_states(p), (Strings{"active", "pending", "pending"}));
}

TEST(Planner, TwoPendingKeysOfDaemonsLateByDifferentSecondsAreARace) {
  // Both daemons were down past the handover and each activates its key prepublish after its own now.
  const TimePoint now = kT0 + kPeriod + 50s;
  const Plan p = plan(keyset(), {key(1, kT0), key(2, now + kPrepublish), key(3, now + kPrepublish + 2s)}, now);
  EXPECT_EQ(p.destroy, (Ids{id(3)}));
  EXPECT_EQ(live_states(p), (Strings{"active", "pending"}));
}

TEST(Planner, TwoPendingKeysAPeriodApartAfterTheClockSteppedBackAreBothKept) {
  // Keys of an undisturbed rotation, then the clock goes back to before the second one's activation.
  const std::vector<KeyRecord> keys{key(1, kT0), key(2, kT0 + kPeriod), key(3, kT0 + 2 * kPeriod)};
  const TimePoint now = kT0 + kPeriod - 50s;
  const Plan p = plan(keyset(), keys, now);
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(live_ids(p), (Ids{id(1), id(2), id(3)}));
  EXPECT_EQ(live_states(p), (Strings{"active", "pending", "pending"}));
  EXPECT_EQ(at(p.generate), std::nullopt);
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod));
}

TEST(Planner, APendingKeyCloseAfterTheActiveOneIsNoRaceLoser) {
  // Only pending keys race: a key that already signs is never destroyed for being close to another.
  const TimePoint now = kT0 + 5s;
  const Plan p = plan(keyset(), {key(1, kT0), key(2, kT0 + 10s)}, now);
  EXPECT_TRUE(p.destroy.empty());
  EXPECT_EQ(live_states(p), (Strings{"active", "pending"}));
}

// --- clocks that jump --------------------------------------------------------------------------------

TEST(Planner, AClockThatJumpsForwardSeveralPeriodsLeavesOnlyTheNewestKeyActive) {
  const std::vector<KeyRecord> keys{key(1, kT0), key(2, kT0 + kPeriod), key(3, kT0 + 2 * kPeriod)};
  const TimePoint now = kT0 + 5 * kPeriod + 7s;
  const Plan p = plan(keyset(true), keys, now);
  EXPECT_EQ(live_ids(p), (Ids{id(3)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_EQ(sorted(p.destroy), (Ids{id(1), id(2)}));
  EXPECT_EQ(at(p.generate), at(now + kPrepublish));

  const Plan kept = plan(keyset(false), keys, now);
  EXPECT_EQ(live_ids(kept), (Ids{id(3)}));
  EXPECT_TRUE(kept.destroy.empty());
  EXPECT_EQ(at(kept.generate), at(now + kPrepublish));

  // Once the new key exists: it is pending, prepublished, and nothing more is generated.
  const Plan after = plan(keyset(true), {key(3, kT0 + 2 * kPeriod), key(9, now + kPrepublish)}, now);
  EXPECT_EQ(live_states(after), (Strings{"active", "pending"}));
  EXPECT_EQ(at(after.generate), std::nullopt);
  EXPECT_TRUE(after.destroy.empty());
  EXPECT_EQ(at(after.next), at(now + kPrepublish));
}

TEST(Planner, AClockThatJumpsForwardPastAPendingKeyActivatesIt) {
  const std::vector<KeyRecord> keys{key(1, kT0), key(2, kT0 + kPeriod)};
  const TimePoint now = kT0 + 4 * kPeriod;
  const Plan p = plan(keyset(), keys, now);
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(live_states(p), (Strings{"active"}));
  EXPECT_EQ(p.destroy, (Ids{id(1)}));
  EXPECT_EQ(at(p.generate), at(now + kPrepublish));
}

TEST(Planner, AClockSteppedBackBeforeEveryActivationGeneratesAKeyNowAndDestroysNothing) {
  const std::vector<KeyRecord> keys{key(1, kT0), key(2, kT0 + kPeriod)};
  for (auto back : {1s, 50s, 500s, 3 * kPeriod}) {
    SCOPED_TRACE(back.count());
    const TimePoint now = kT0 - back;
    const Plan p = plan(keyset(), keys, now);
    EXPECT_EQ(at(p.generate), at(now)) << "a keyset always has an active key";
    EXPECT_TRUE(p.destroy.empty()) << "keys that will sign later are kept";
    EXPECT_EQ(live_states(p), (Strings{"pending", "pending"}));

    std::vector<KeyRecord> with_new = keys;
    with_new.push_back(key(9, now));
    const Plan after = plan(keyset(), with_new, now);
    EXPECT_EQ(at(after.generate), std::nullopt);
    EXPECT_TRUE(after.destroy.empty());
    EXPECT_EQ(live_ids(after), (Ids{id(9), id(1), id(2)}));
    EXPECT_EQ(live_states(after), (Strings{"active", "pending", "pending"}));
    EXPECT_EQ(at(after.next), at(kT0));
  }
}

// --- the daemon's loop on a simulated token ------------------------------------------------------------

// What Keyring::reconcile_at does with a plan: destroy, generate, plan again (at most two rounds).
class SimulatedToken {
 public:
  explicit SimulatedToken(config::KeysetConfig k) : keyset_(std::move(k)) {}

  Plan reconcile(TimePoint now) {
    Plan p = plan(keyset_, keys_, now);
    apply_destroy(p);
    if (p.generate) {
      EXPECT_GE(at(*p.generate), at(now));
      keys_.push_back({id(next_id_++), KeyLabel{keyset_.name, *p.generate, now, false}});
      p = plan(keyset_, keys_, now);
      apply_destroy(p);
      EXPECT_FALSE(p.generate) << "planning again after generating must not generate again, at " << at(now);
    }
    return p;
  }

  const std::vector<KeyRecord>& keys() const { return keys_; }

 private:
  void apply_destroy(const Plan& p) {
    for (const auto& d : p.destroy) {
      const auto it = std::find_if(keys_.begin(), keys_.end(), [&](const KeyRecord& k) { return k.id == d; });
      EXPECT_NE(it, keys_.end()) << "destroying a key that is not on the token";
      if (it != keys_.end()) keys_.erase(it);
    }
  }

  config::KeysetConfig keyset_;
  std::vector<KeyRecord> keys_;
  std::uint8_t next_id_ = 1;
};

bool same_picture(const Plan& a, const Plan& b) {
  if (a.live.size() != b.live.size()) return false;
  for (std::size_t i = 0; i < a.live.size(); ++i)
    if (a.live[i].id != b.live[i].id || a.live[i].schedule.state != b.live[i].schedule.state ||
        a.live[i].schedule.retires != b.live[i].schedule.retires)
      return false;
  return true;
}

TEST(Planner, NextIsAlwaysTheEarliestUpcomingTransition) {
  // Every second of five periods: before `next` nothing changes by itself; at `next` something does.
  const config::KeysetConfig k = keyset();
  SimulatedToken token(k);
  Plan previous = token.reconcile(kT0);
  int changes = 0;
  for (TimePoint now = kT0 + 1s; now <= kT0 + 5 * kPeriod; now += 1s) {
    ASSERT_GT(at(previous.next), at(now - 1s)) << "next is in the past at " << at(now - 1s);
    const Plan fresh = plan(k, token.keys(), now);
    const bool changed = !same_picture(previous, fresh) || fresh.generate || !fresh.destroy.empty();
    if (now < previous.next) {
      ASSERT_FALSE(changed) << "the plan changed at " << at(now) << " before its next " << at(previous.next);
      ASSERT_EQ(at(fresh.next), at(previous.next)) << "at " << at(now);
    } else {
      ASSERT_TRUE(changed) << "nothing changed at next " << at(previous.next);
      ++changes;
    }
    previous = token.reconcile(now);
  }
  // Per period: prepublish, activation, retirement.
  EXPECT_EQ(changes, 3 * 5 - 1);  // the first key's activation at kT0 was no change of a plan
}

TEST(Planner, AnUndisturbedRotationKeepsTheContractsTimes) {
  const config::KeysetConfig k = keyset();
  SimulatedToken token(k);
  std::map<Bytes, TimePoint> first_published, activated, deactivated;
  std::map<Bytes, bool> gone;
  for (TimePoint now = kT0; now <= kT0 + 6 * kPeriod; now += 1s) {
    const Plan p = token.reconcile(now);
    ASSERT_EQ(active_count(p), 1) << "at " << at(now);
    ASSERT_LE(p.live.size(), 2u) << "pending + active, or active + retiring, at " << at(now);
    for (const auto& l : p.live) {
      first_published.try_emplace(l.id, now);
      if (l.schedule.state == KeyState::active) activated.try_emplace(l.id, now);
      if (l.schedule.state == KeyState::retiring) deactivated.try_emplace(l.id, now);
    }
    for (const auto& [key_id, since] : first_published) {
      if (live(p, key_id) || gone[key_id]) continue;
      gone[key_id] = true;
      ASSERT_TRUE(deactivated.contains(key_id));
      EXPECT_EQ(at(now), at(deactivated[key_id] + kRetireAfter)) << "published exactly retire_after after it stopped signing";
    }
  }
  ASSERT_EQ(activated.size(), 7u);
  for (const auto& [key_id, when] : activated) {
    EXPECT_EQ((when - kT0) % kPeriod, 0s) << "handover at activates + period, at " << at(when);
    if (when != kT0) {
      EXPECT_EQ(at(first_published[key_id]), at(when - kPrepublish)) << "prepublished for prepublish";
    }
  }
  EXPECT_LE(token.keys().size(), 2u) << "retired keys are gone from the token";
}

TEST(Planner, EveryJumpingClockLeavesExactlyOneActiveKey) {
  const config::KeysetConfig k = keyset();
  SimulatedToken token(k);
  // Forward in seconds, a jump of several periods, steps back (before every activation, too), forward again.
  std::vector<TimePoint> clock;
  for (auto t = kT0; t < kT0 + 2 * kPeriod; t += 7s) clock.push_back(t);
  clock.push_back(kT0 + 5 * kPeriod + 3s);
  clock.push_back(kT0 + 5 * kPeriod + 4s);
  clock.push_back(kT0 + 4 * kPeriod);
  clock.push_back(kT0 - kPeriod);
  for (auto t = kT0 - kPeriod; t < kT0 + 9 * kPeriod; t += 13s) clock.push_back(t);
  clock.push_back(kT0 + 8 * kPeriod - kPrepublish);  // back into a prepublication, after the step
  clock.push_back(kT0 + 20 * kPeriod);

  for (const TimePoint now : clock) {
    const Plan p = token.reconcile(now);
    ASSERT_EQ(active_count(p), 1) << "at " << at(now);
    EXPECT_GT(at(p.next), at(now)) << "at " << at(now);
    for (const auto& l : p.live)
      EXPECT_TRUE(std::any_of(token.keys().begin(), token.keys().end(), [&](const KeyRecord& r) { return r.id == l.id; }))
          << "a published key is not on the token";
    // A key published as pending has not signed yet.
    for (const auto& l : p.live) {
      if (l.schedule.state == KeyState::pending) {
        EXPECT_GT(at(l.schedule.activates), at(now));
      }
    }
  }
  // Back to an undisturbed clock: the token's keys stay bounded.
  for (TimePoint now = kT0 + 20 * kPeriod; now <= kT0 + 23 * kPeriod; now += 1s) {
    const Plan p = token.reconcile(now);
    ASSERT_EQ(active_count(p), 1) << "at " << at(now);
    ASSERT_LE(p.live.size(), 3u) << "at " << at(now);
  }
  EXPECT_LE(token.keys().size(), 3u);
}

// --- rotation = "manual" ----------------------------------------------------------------------------

config::KeysetConfig manual_keyset(bool destroy_retired = true) {
  config::KeysetConfig k = keyset(destroy_retired);
  k.usage = config::Usage::tls;
  k.rotation = config::Rotation::manual;
  return k;
}

TEST(Planner, AFreshManualKeysetGeneratesOneKeyActiveNow) {
  EXPECT_EQ(at(plan(manual_keyset(), {}, kT0).generate), 0);
}

TEST(Planner, AManualKeysetsKeyStaysActiveForeverWithNothingGeneratedOrPlanned) {
  for (const TimePoint now : {kT0, kT0 + kPeriod - kPrepublish, kT0 + kPeriod, kT0 + 100 * kPeriod}) {
    const Plan p = plan(manual_keyset(), {key(1, kT0)}, now);
    EXPECT_EQ(at(p.generate), std::nullopt) << "at " << at(now);
    EXPECT_EQ(live_states(p), (Strings{"active"})) << "at " << at(now);
    EXPECT_EQ(p.live[0].schedule.deactivates, kNever) << "at " << at(now);
    EXPECT_EQ(p.live[0].schedule.retires, kNever) << "at " << at(now);
    EXPECT_EQ(p.next, TimePoint::max()) << "nothing happens by the clock, at " << at(now);
  }
}

TEST(Planner, AfterAManualRotationTheOldKeyIsRetiringForever) {
  const TimePoint rotated = kT0 + 5s;
  for (const TimePoint now : {rotated, rotated + kRetireAfter, rotated + 100 * kPeriod}) {
    const Plan p = plan(manual_keyset(), {key(1, kT0), key(2, rotated)}, now);
    EXPECT_EQ(live_states(p), (Strings{"retiring", "active"})) << "at " << at(now);
    EXPECT_EQ(at(p.live[0].schedule.deactivates), at(rotated)) << "the successor's activation";
    EXPECT_EQ(p.live[0].schedule.retires, kNever);
    EXPECT_TRUE(p.destroy.empty()) << "at " << at(now);
    EXPECT_EQ(at(p.generate), std::nullopt);
    EXPECT_EQ(p.next, TimePoint::max());
  }
}

TEST(Planner, AManualKeyTheOperatorRetiredIsDroppedAndDestroyed) {
  const Plan p = plan(manual_keyset(), {key(1, kT0, true), key(2, kT0 + 5s)}, kT0 + 10s);
  EXPECT_EQ(live_ids(p), (Ids{id(2)}));
  EXPECT_EQ(p.destroy, (Ids{id(1)}));
  const Plan kept = plan(manual_keyset(false), {key(1, kT0, true), key(2, kT0 + 5s)}, kT0 + 10s);
  EXPECT_EQ(live_ids(kept), (Ids{id(2)}));
  EXPECT_TRUE(kept.destroy.empty()) << "destroy_retired = false keeps it on the token";
}

TEST(Planner, AManualKeysetWhoseOnlyKeyWasRetiredGetsANewOne) {
  const Plan p = plan(manual_keyset(), {key(1, kT0, true)}, kT0 + 10s);
  EXPECT_EQ(at(p.generate), at(kT0 + 10s));
}

TEST(Planner, AManualKeysetActivatesALeftoverPendingKeyAtItsTime) {
  // A key labelled to activate later (written while the keyset was scheduled): its label still rules.
  const Plan p = plan(manual_keyset(), {key(1, kT0), key(2, kT0 + kPeriod)}, kT0 + 10s);
  EXPECT_EQ(live_states(p), (Strings{"active", "pending"}));
  EXPECT_EQ(at(p.next), at(kT0 + kPeriod));
}

}  // namespace
}  // namespace hsmsignd::keyring
