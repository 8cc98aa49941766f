// The key lifecycle as a pure function of activation times and a clock: every boundary, both sides.
#include "keyring/lifecycle.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace hsmsignd::keyring {

// gtest prints states by name in failure messages (found by argument-dependent lookup, so not in the
// anonymous namespace).
void PrintTo(KeyState s, std::ostream* os);
void PrintTo(KeyState s, std::ostream* os) { *os << name(s); }

namespace {

using namespace std::chrono_literals;

class Lifecycle : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds kPeriod = 30 * 24h;
  static constexpr std::chrono::seconds kRetireAfter = 24h;
  static constexpr TimePoint kT0{std::chrono::seconds(1'764'400'000)};

  // Keys activated one rotation period apart, as an undisturbed rotation makes them.
  static std::vector<TimePoint> rotated_keys(int count) {
    std::vector<TimePoint> out;
    for (int i = 0; i < count; ++i) out.push_back(kT0 + i * kPeriod);
    return out;
  }

  static std::vector<KeyState> states(const std::vector<TimePoint>& activations, TimePoint now) {
    std::vector<KeyState> out;
    for (const auto& s : schedule(activations, kPeriod, kRetireAfter, now)) out.push_back(s.state);
    return out;
  }

  static int active_count(const std::vector<TimePoint>& activations, TimePoint now) {
    int n = 0;
    for (auto s : states(activations, now)) n += s == KeyState::active;
    return n;
  }
};

using enum KeyState;

TEST_F(Lifecycle, NoKeysGiveNoSchedules) {
  EXPECT_TRUE(schedule({}, kPeriod, kRetireAfter, kT0).empty());
}

TEST_F(Lifecycle, AKeyIsPendingUntilTheSecondItActivates) {
  const std::vector<TimePoint> one{kT0};
  EXPECT_EQ(states(one, kT0 - 1s), std::vector{pending});
  EXPECT_EQ(states(one, kT0), std::vector{active});  // exactly at activation: active
  EXPECT_EQ(states(one, kT0 + 1s), std::vector{active});
}

TEST_F(Lifecycle, AKeyPlansItsHandoverOneRotationPeriodAfterActivation) {
  const std::vector<TimePoint> one{kT0};
  const auto s = schedule(one, kPeriod, kRetireAfter, kT0);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].activates, kT0);
  EXPECT_EQ(s[0].deactivates, kT0 + kPeriod);
  EXPECT_EQ(s[0].retires, kT0 + kPeriod + kRetireAfter);
  // The plan does not depend on the clock: the same times before activation and long after.
  for (TimePoint now : {kT0 - 100 * kPeriod, kT0 + 100 * kPeriod}) {
    const auto later = schedule(one, kPeriod, kRetireAfter, now);
    EXPECT_EQ(later[0].deactivates, kT0 + kPeriod);
    EXPECT_EQ(later[0].retires, kT0 + kPeriod + kRetireAfter);
  }
}

TEST_F(Lifecycle, AKeyWithoutSuccessorStaysActivePastItsPlannedHandover) {
  const std::vector<TimePoint> one{kT0};
  // A failed key generation must never stop issuance: the only key keeps signing.
  EXPECT_EQ(states(one, kT0 + kPeriod), std::vector{active});
  EXPECT_EQ(states(one, kT0 + kPeriod + kRetireAfter), std::vector{active});
  EXPECT_EQ(states(one, kT0 + 1000 * kPeriod), std::vector{active});
}

TEST_F(Lifecycle, TwoKeysHandOverExactlyAtTheSuccessorsActivation) {
  const auto keys = rotated_keys(2);
  EXPECT_EQ(states(keys, keys[1] - 1s), (std::vector{active, pending}));
  EXPECT_EQ(states(keys, keys[1]), (std::vector{retiring, active}));
  EXPECT_EQ(states(keys, keys[1] + 1s), (std::vector{retiring, active}));
}

TEST_F(Lifecycle, TheOldKeyRetiresExactlyRetireAfterTheHandover) {
  const auto keys = rotated_keys(2);
  const TimePoint retires = keys[1] + kRetireAfter;
  EXPECT_EQ(schedule(keys, kPeriod, kRetireAfter, retires)[0].retires, retires);
  EXPECT_EQ(states(keys, retires - 1s), (std::vector{retiring, active}));
  EXPECT_EQ(states(keys, retires), (std::vector{retired, active}));
  EXPECT_EQ(states(keys, retires + 1s), (std::vector{retired, active}));
}

TEST_F(Lifecycle, AnEarlySuccessorMovesTheHandoverForward) {
  // An immediate rotation (compromise response): the successor activates long before the planned time.
  const std::vector<TimePoint> keys{kT0, kT0 + 2h};
  const auto s = schedule(keys, kPeriod, kRetireAfter, kT0 + 2h);
  EXPECT_EQ(s[0].deactivates, kT0 + 2h);
  EXPECT_NE(s[0].deactivates, kT0 + kPeriod);
  EXPECT_EQ(s[0].retires, kT0 + 2h + kRetireAfter);
  EXPECT_EQ(s[0].state, retiring);
  EXPECT_EQ(s[1].state, active);
  EXPECT_EQ(s[1].deactivates, kT0 + 2h + kPeriod);  // the newest key plans its own handover
}

TEST_F(Lifecycle, APrepublishedSuccessorIsPendingWhileItsPredecessorSigns) {
  const std::vector<TimePoint> keys{kT0, kT0 + kPeriod};
  const TimePoint prepublished = kT0 + kPeriod - 1h;
  EXPECT_EQ(states(keys, prepublished), (std::vector{active, pending}));
}

TEST_F(Lifecycle, ThreeKeysAtAndAroundEveryBoundary) {
  const auto k = rotated_keys(3);
  struct Case {
    const char* when;
    TimePoint now;
    std::vector<KeyState> expected;
  };
  const Case cases[] = {
      {"before the first activation", k[0] - 1s, {pending, pending, pending}},
      {"at the first activation", k[0], {active, pending, pending}},
      {"just before the second activation", k[1] - 1s, {active, pending, pending}},
      {"at the second activation", k[1], {retiring, active, pending}},
      {"just before the first retires", k[1] + kRetireAfter - 1s, {retiring, active, pending}},
      {"when the first retires", k[1] + kRetireAfter, {retired, active, pending}},
      {"just before the third activation", k[2] - 1s, {retired, active, pending}},
      {"at the third activation", k[2], {retired, retiring, active}},
      {"just before the second retires", k[2] + kRetireAfter - 1s, {retired, retiring, active}},
      {"when the second retires", k[2] + kRetireAfter, {retired, retired, active}},
      {"long after, with no fourth key", k[2] + 50 * kPeriod, {retired, retired, active}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.when);
    EXPECT_EQ(states(k, c.now), c.expected);
  }
}

TEST_F(Lifecycle, ThreeKeysPlanEachHandoverAtTheNextActivation) {
  const auto k = rotated_keys(3);
  const auto s = schedule(k, kPeriod, kRetireAfter, k[1]);
  ASSERT_EQ(s.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(s[i].activates, k[i]);
    EXPECT_EQ(s[i].deactivates, i + 1 < 3 ? k[i + 1] : k[i] + kPeriod);
    EXPECT_EQ(s[i].retires, s[i].deactivates + kRetireAfter);
  }
}

TEST_F(Lifecycle, AClockThatJumpsPastSeveralPeriodsLeavesOnlyTheNewestActive) {
  const auto k = rotated_keys(3);
  // Suspended for a year: every key but the newest has long retired, and the newest still signs.
  EXPECT_EQ(states(k, k[2] + 12 * kPeriod), (std::vector{retired, retired, active}));
  // A jump that lands between the second's handover and its retirement.
  EXPECT_EQ(states(k, k[2] + kRetireAfter / 2), (std::vector{retired, retiring, active}));
}

TEST_F(Lifecycle, AClockEarlierThanEveryActivationLeavesEveryKeyPending) {
  const auto k = rotated_keys(3);
  EXPECT_EQ(states(k, k[0] - 1s), (std::vector{pending, pending, pending}));
  EXPECT_EQ(states(k, TimePoint{}), (std::vector{pending, pending, pending}));  // a clock reset to 1970
  EXPECT_EQ(active_count(k, k[0] - 1s), 0);
  EXPECT_EQ(active_count(k, k[0]), 1);
}

TEST_F(Lifecycle, EqualActivationTimesStillGiveExactlyOneActiveKey) {
  // Two daemons that rotated in the same second: the later key in the sorted order signs.
  const std::vector<TimePoint> twins{kT0, kT0};
  EXPECT_EQ(states(twins, kT0 - 1s), (std::vector{pending, pending}));
  EXPECT_EQ(states(twins, kT0), (std::vector{retiring, active}));
  EXPECT_EQ(states(twins, kT0 + kRetireAfter), (std::vector{retired, active}));
  const auto s = schedule(twins, kPeriod, kRetireAfter, kT0);
  EXPECT_EQ(s[0].deactivates, kT0);
  EXPECT_EQ(s[0].retires, kT0 + kRetireAfter);
}

TEST_F(Lifecycle, ExactlyOneKeyIsActiveAtEverySecondAroundEveryBoundary) {
  const auto k = rotated_keys(3);
  for (TimePoint boundary : {k[0], k[1], k[1] + kRetireAfter, k[2], k[2] + kRetireAfter, k[2] + kPeriod}) {
    for (auto delta = -3s; delta <= 3s; delta += 1s) {
      const TimePoint now = boundary + delta;
      SCOPED_TRACE(std::to_string((now - k[0]).count()) + " s after the first activation");
      EXPECT_EQ(active_count(k, now), now < k[0] ? 0 : 1);
    }
  }
}

TEST_F(Lifecycle, AZeroRetireAfterRetiresTheOldKeyAtTheHandover) {
  const auto k = rotated_keys(2);
  const auto at = schedule(k, kPeriod, 0s, k[1]);
  EXPECT_EQ(at[0].state, retired);
  EXPECT_EQ(at[1].state, active);
  const auto before = schedule(k, kPeriod, 0s, k[1] - 1s);
  EXPECT_EQ(before[0].state, active);
}

}  // namespace
}  // namespace hsmsignd::keyring
