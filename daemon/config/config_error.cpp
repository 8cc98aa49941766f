#include "config/config_error.h"

#include <cstdio>
#include <utility>

namespace hsmsignd::config {
namespace {

// Escapes what would break the one-line-per-error rule or confuse a terminal.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

std::string describe(const std::filesystem::path& file, std::size_t line, std::string_view key,
                     std::string_view message) {
  std::string text = file.string();
  if (line != 0) text.append(":").append(std::to_string(line));
  text += ": ";
  if (!key.empty()) text.append(key).append(": ");
  text += message;
  return one_line(text);
}

}  // namespace

ConfigError::ConfigError(std::filesystem::path file_, std::size_t line_, std::string key_,
                         std::string_view message)
    : std::runtime_error(describe(file_, line_, key_, message)),
      file(std::move(file_)),
      line(line_),
      key(std::move(key_)) {}

std::string in_quotes(std::string_view value) {
  constexpr std::size_t kLongest = 64;
  std::string quoted = "\"";
  quoted.append(value.substr(0, kLongest)).append("\"");
  if (value.size() > kLongest) quoted.append("...");
  return quoted;
}

}  // namespace hsmsignd::config
