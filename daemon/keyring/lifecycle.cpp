#include "keyring/lifecycle.h"

namespace hsmsignd::keyring {

std::vector<Schedule> schedule(std::span<const TimePoint> activations, std::chrono::seconds rotation_period,
                               std::chrono::seconds retire_after, TimePoint now) {
  std::vector<Schedule> out(activations.size());
  for (std::size_t i = 0; i < activations.size(); ++i) {
    Schedule& s = out[i];
    const bool has_successor = i + 1 < activations.size();
    s.activates = activations[i];
    s.deactivates = has_successor ? activations[i + 1] : s.activates + rotation_period;
    s.retires = s.deactivates + retire_after;
    if (now < s.activates)
      s.state = KeyState::pending;
    else if (!has_successor || now < s.deactivates)
      s.state = KeyState::active;
    else if (now < s.retires)
      s.state = KeyState::retiring;
    else
      s.state = KeyState::retired;
  }
  return out;
}

}  // namespace hsmsignd::keyring
