#include "common/rfc3339.h"

#include <cstdio>
#include <ctime>

namespace hsmsignd {
namespace {

std::string format(std::time_t seconds, long micros, bool with_micros) {
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[40];
  const int n = with_micros ? std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros)
                            : std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

std::string rfc3339(std::chrono::sys_seconds t) { return format(t.time_since_epoch().count(), 0, false); }

std::string rfc3339_micros(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return format(static_cast<std::time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000), true);
}

}  // namespace hsmsignd
