#include "keyring/key_label.h"

#include <charconv>

namespace hsmsignd::keyring {
namespace {

constexpr std::string_view kPrefix = "hsmsignd/";

std::optional<TimePoint> parse_seconds(std::string_view s) {
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), seconds);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty() || seconds < 0) return std::nullopt;
  return TimePoint(std::chrono::seconds(seconds));
}

}  // namespace

std::string KeyLabel::str() const {
  return std::string(kPrefix) + keyset + "/" + std::to_string(activates.time_since_epoch().count()) + "/" +
         std::to_string(created.time_since_epoch().count()) + (retired ? "/retired" : "");
}

std::optional<KeyLabel> KeyLabel::parse(std::string_view label) {
  if (!label.starts_with(kPrefix)) return std::nullopt;
  label.remove_prefix(kPrefix.size());
  const auto slash = label.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string_view keyset = label.substr(0, slash), times = label.substr(slash + 1);
  const auto slash2 = times.find('/');
  if (slash2 == std::string_view::npos) return std::nullopt;
  std::string_view rest = times.substr(slash2 + 1);
  constexpr std::string_view kRetired = "/retired";
  const bool retired = rest.ends_with(kRetired);
  if (retired) rest.remove_suffix(kRetired.size());
  auto activates = parse_seconds(times.substr(0, slash2));
  auto created = parse_seconds(rest);
  if (!activates || !created) return std::nullopt;
  return KeyLabel{std::string(keyset), *activates, *created, retired};
}

}  // namespace hsmsignd::keyring
