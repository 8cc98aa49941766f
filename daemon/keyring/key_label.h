// The CKA_LABEL hsmsignd gives its keys: hsmsignd/<keyset>/<activates>/<created>, times in Unix
// seconds, and "/retired" appended when an operator retired the key ahead of its schedule. The token is
// the source of truth, so what the lifecycle needs to survive a crash lives on the key itself, written
// in the same call that creates (or retires) it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hsmsignd::keyring {

using TimePoint = std::chrono::sys_seconds;

struct KeyLabel {
  std::string keyset;
  TimePoint activates;
  TimePoint created;
  bool retired = false;

  std::string str() const;
  // nullopt for labels hsmsignd did not write (other applications' keys on a shared token).
  static std::optional<KeyLabel> parse(std::string_view label);
};

}  // namespace hsmsignd::keyring
