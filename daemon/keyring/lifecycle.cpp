#include "keyring/lifecycle.h"

namespace hsmsignd::keyring {
namespace {

// One Schedule per activation: `last_end(activates)` is when a key without successor plans to hand
// over, `retirement(deactivates)` when a key leaves. The states follow from the times alone.
template <class LastEnd, class Retirement>
std::vector<Schedule> schedules(std::span<const TimePoint> activations, TimePoint now, LastEnd last_end,
                                Retirement retirement) {
  std::vector<Schedule> out(activations.size());
  for (std::size_t i = 0; i < activations.size(); ++i) {
    Schedule& s = out[i];
    const bool has_successor = i + 1 < activations.size();
    s.activates = activations[i];
    s.deactivates = has_successor ? activations[i + 1] : last_end(s.activates);
    s.retires = retirement(s.deactivates);
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

}  // namespace

std::vector<Schedule> schedule(std::span<const TimePoint> activations, std::chrono::seconds rotation_period,
                               std::chrono::seconds retire_after, TimePoint now) {
  return schedules(
      activations, now, [&](TimePoint activates) { return activates + rotation_period; },
      [&](TimePoint deactivates) { return deactivates + retire_after; });
}

std::vector<Schedule> schedule_manual(std::span<const TimePoint> activations, TimePoint now) {
  return schedules(
      activations, now, [](TimePoint) { return kNever; }, [](TimePoint) { return kNever; });
}

}  // namespace hsmsignd::keyring
