// The one error of the configuration layer: what is wrong, and exactly where in which file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hsmsignd::config {

// what() is "FILE:LINE: KEY: message", dropping LINE and KEY when they are unknown. It is always one
// line: control characters from the file are escaped, because the message goes to a log as is.
struct ConfigError : std::runtime_error {
  ConfigError(std::filesystem::path file, std::size_t line, std::string key, std::string_view message);

  std::filesystem::path file;
  std::size_t line;  // 1-based; 0 when the error belongs to no line
  std::string key;   // dotted, e.g. "keyset[0].rotation_period"; empty when none
};

// `value` in double quotes for a message, cut short so a long value cannot flood the log.
std::string in_quotes(std::string_view value);

}  // namespace hsmsignd::config
