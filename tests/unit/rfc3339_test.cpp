// RFC 3339 UTC timestamps, as /v1/keys, the custody report and the audit log write them.
#include "common/rfc3339.h"

#include <gtest/gtest.h>

#include <chrono>

namespace hsmsignd {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

sys_seconds at(long long unix_seconds) { return sys_seconds(seconds(unix_seconds)); }

TEST(Rfc3339, TheEpoch) {
  EXPECT_EQ(rfc3339(at(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339(at(1)), "1970-01-01T00:00:01Z");
  EXPECT_NE(rfc3339(at(1)), "1970-01-01T00:00:00Z");
}

TEST(Rfc3339, KnownInstants) {
  EXPECT_EQ(rfc3339(at(1'764'400'000)), "2025-11-29T07:06:40Z");
  EXPECT_EQ(rfc3339(at(946'684'799)), "1999-12-31T23:59:59Z");
  EXPECT_EQ(rfc3339(at(946'684'800)), "2000-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339(at(2'147'483'648)), "2038-01-19T03:14:08Z");  // past 32-bit time_t
}

TEST(Rfc3339, LeapDays) {
  EXPECT_EQ(rfc3339(at(1'709'210'096)), "2024-02-29T12:34:56Z");
  EXPECT_EQ(rfc3339(at(951'782'400)), "2000-02-29T00:00:00Z");  // divisible by 400: a leap year
  // Not leap years: the day after 28 February is 1 March.
  EXPECT_EQ(rfc3339(at(1'677'542'400) + days(1)), "2023-03-01T00:00:00Z");
  EXPECT_EQ(rfc3339(at(4'107'456'000) + days(1)), "2100-03-01T00:00:00Z");  // divisible by 100 only
}

TEST(Rfc3339, AgreesWithTheChronoCalendar) {
  const sys_seconds t = sys_days{2031y / March / 4} + 5h + 6min + 7s;
  EXPECT_EQ(rfc3339(t), "2031-03-04T05:06:07Z");
}

TEST(Rfc3339, MicrosecondsArePaddedToSixDigits) {
  const system_clock::time_point epoch{};
  EXPECT_EQ(rfc3339_micros(epoch), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(rfc3339_micros(epoch + 5us), "1970-01-01T00:00:00.000005Z");
  EXPECT_EQ(rfc3339_micros(system_clock::time_point(1'764'400'000s) + 123us), "2025-11-29T07:06:40.000123Z");
  EXPECT_EQ(rfc3339_micros(system_clock::time_point(1'764'400'000s) + 999'999us), "2025-11-29T07:06:40.999999Z");
  EXPECT_EQ(rfc3339_micros(system_clock::time_point(1'764'400'000s) + 1'000'000us), "2025-11-29T07:06:41.000000Z");
}

TEST(Rfc3339, MicrosecondsTruncateFinerTicks) {
  // The audit log orders by seq, not time; truncating never shows a time that has not come yet.
  const auto t = system_clock::time_point(1'764'400'000s) + 123us + duration_cast<system_clock::duration>(999ns);
  EXPECT_EQ(rfc3339_micros(t), "2025-11-29T07:06:40.000123Z");
}

}  // namespace
}  // namespace hsmsignd
