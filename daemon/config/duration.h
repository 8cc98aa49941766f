// Durations as the configuration writes them: "90s", "15m", "1h", "30d".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hsmsignd::config {

using Duration = std::chrono::seconds;

// Digits then exactly one unit (s, m, h, d); no sign, no space, no fraction, no compound ("1h30m").
// nullopt for anything else, and for a value that does not fit in Duration.
std::optional<Duration> parse_duration(std::string_view text);

// The shortest exact spelling parse_duration accepts back: 900s -> "15m", 86400s -> "1d", 61s -> "61s".
std::string format_duration(Duration d);

}  // namespace hsmsignd::config
