#include "config/duration.h"

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace hsmsignd::config {
namespace {

constexpr std::array<std::pair<char, std::int64_t>, 4> kUnits{{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};

std::optional<std::int64_t> seconds_per(char unit) {
  for (const auto& [letter, seconds] : kUnits)
    if (letter == unit) return seconds;
  return std::nullopt;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  const auto unit = seconds_per(text.back());
  if (!unit) return std::nullopt;

  constexpr std::int64_t kMax = std::numeric_limits<Duration::rep>::max();
  std::int64_t count = 0;
  for (const char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    if (count > (kMax - digit) / 10) return std::nullopt;
    count = count * 10 + digit;
  }
  if (count > kMax / *unit) return std::nullopt;
  return Duration{count * *unit};
}

std::string format_duration(Duration d) {
  const std::int64_t seconds = d.count();
  for (const auto& [letter, size] : kUnits)
    if (seconds != 0 && seconds % size == 0) return std::to_string(seconds / size) + letter;
  return std::to_string(seconds) + "s";
}

}  // namespace hsmsignd::config
