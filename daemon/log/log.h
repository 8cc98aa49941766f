// One line per event on stderr, where journald picks it up:
//   hsmsignd[info] event=issue client=auth-service kid=… jti=…
// Values are quoted when they hold blanks or quotes. Callers pass only what may be shown: never a PIN,
// a token, a signature input or a private claim.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace hsmsignd::log {

enum class Level { info, warning, error };

using Field = std::pair<std::string_view, std::string>;

void write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void info(std::string_view event, std::initializer_list<Field> fields = {}) { write(Level::info, event, fields); }
inline void warning(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::warning, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) { write(Level::error, event, fields); }

}  // namespace hsmsignd::log
