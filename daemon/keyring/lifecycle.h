// The life of a keyset's keys, derived from their activation times alone: the newest key whose
// activation has come is active, later ones are pending, earlier ones retire `retire_after` after their
// successor took over. A key without a successor shows when it is planned to hand over
// (activates + rotation_period), but stays active until a successor really exists. Pure, so every edge
// can be tested with any clock.
#pragma once

#include <chrono>
#include <span>
#include <string_view>
#include <vector>

#include "keyring/key_label.h"

namespace hsmsignd::keyring {

enum class KeyState { pending, active, retiring, retired };

constexpr std::string_view name(KeyState s) {
  switch (s) {
    case KeyState::pending: return "pending";
    case KeyState::active: return "active";
    case KeyState::retiring: return "retiring";
    case KeyState::retired: return "retired";
  }
  return "?";
}

struct Schedule {
  TimePoint activates;
  TimePoint deactivates;  // when the next key takes over (planned, while there is none yet)
  TimePoint retires;      // deactivates + retire_after
  KeyState state = KeyState::pending;
};

// `activations` sorted ascending; one Schedule each, in the same order.
std::vector<Schedule> schedule(std::span<const TimePoint> activations, std::chrono::seconds rotation_period,
                               std::chrono::seconds retire_after, TimePoint now);

}  // namespace hsmsignd::keyring
