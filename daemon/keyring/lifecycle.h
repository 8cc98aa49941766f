// The life of a keyset's keys, derived from their activation times alone: the newest key whose
// activation has come is active, later ones are pending, earlier ones retire `retire_after` after their
// successor took over. A key without a successor shows when it is planned to hand over
// (activates + rotation_period), but stays active until a successor really exists. Pure, so every edge
// can be tested with any clock.
#pragma once

#include <chrono>
#include <optional>
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

// "Until an operator acts": the end of a manual keyset's key, which no clock brings.
inline constexpr TimePoint kNever = TimePoint::max();
// `t`, or nullopt for kNever: what reports print (an end no clock brings has no date).
inline std::optional<TimePoint> unless_never(TimePoint t) { return t == kNever ? std::nullopt : std::optional(t); }

// `activations` sorted ascending; one Schedule each, in the same order.
std::vector<Schedule> schedule(std::span<const TimePoint> activations, std::chrono::seconds rotation_period,
                               std::chrono::seconds retire_after, TimePoint now);

// The same for a keyset with rotation = "manual": the newest key whose activation has come is active, and
// stays so until an operator makes a successor; older ones are retiring until an operator retires them
// (which their label then says). deactivates is the successor's activation, or kNever; retires is kNever.
std::vector<Schedule> schedule_manual(std::span<const TimePoint> activations, TimePoint now);

}  // namespace hsmsignd::keyring
