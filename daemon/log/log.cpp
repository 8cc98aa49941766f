#include "log/log.h"

#include <unistd.h>


namespace hsmsignd::log {
namespace {

const char* level_name(Level l) {
  switch (l) {
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "?";
}

void append_value(std::string& line, std::string_view v) {
  const bool quote = v.empty() || v.find_first_of(" \"=\\") != std::string_view::npos;
  if (quote) line += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') line += '\\';
    // Control characters could forge a second log line.
    if (static_cast<unsigned char>(c) < 0x20) {
      line += '?';
      continue;
    }
    line += c;
  }
  if (quote) line += '"';
}

}  // namespace

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line = "hsmsignd[";
  line += level_name(level);
  line += "] event=";
  append_value(line, event);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    append_value(line, value);
  }
  line += '\n';
  // One write(2) per line so lines from several threads never interleave.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace hsmsignd::log
