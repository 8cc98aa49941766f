#include "keyring/planner.h"

#include <algorithm>

namespace hsmsignd::keyring {

Plan plan(const config::KeysetConfig& keyset, std::vector<KeyRecord> keys, TimePoint now) {
  Plan out;
  std::erase_if(keys, [&](const KeyRecord& k) {
    if (!k.label.retired) return false;
    if (keyset.destroy_retired) out.destroy.push_back(k.id);
    return true;
  });
  std::sort(keys.begin(), keys.end(), [](const KeyRecord& a, const KeyRecord& b) {
    return std::tie(a.label.activates, a.id) < std::tie(b.label.activates, b.id);
  });

  // Race losers: a pending key less than half a period after the previous pending key. Keys of one
  // undisturbed schedule are a whole period apart (even after the clock stepped back); racing daemons,
  // each late by a different second or two, are not.
  std::vector<KeyRecord> kept;
  for (auto& k : keys) {
    const bool pending = k.label.activates > now;
    if (pending && !kept.empty() && kept.back().label.activates > now &&
        k.label.activates - kept.back().label.activates < keyset.rotation_period / 2) {
      out.destroy.push_back(k.id);
      continue;
    }
    kept.push_back(std::move(k));
  }

  std::vector<TimePoint> activations;
  for (const auto& k : kept) activations.push_back(k.label.activates);
  const bool manual = keyset.rotation == config::Rotation::manual;
  const auto schedules = manual ? schedule_manual(activations, now)
                                : schedule(activations, keyset.rotation_period, keyset.retire_after, now);

  std::optional<Schedule> active;
  bool pending = false;
  out.next = TimePoint::max();
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const Schedule& s = schedules[i];
    if (s.state == KeyState::retired) {
      if (keyset.destroy_retired) out.destroy.push_back(kept[i].id);
      continue;
    }
    out.live.push_back({kept[i].id, s});
    if (s.state == KeyState::active) active = s;
    if (s.state == KeyState::pending) {
      pending = true;
      out.next = std::min(out.next, s.activates);
    }
    if (s.state == KeyState::retiring) out.next = std::min(out.next, s.retires);
  }

  if (!active) {
    out.generate = now;
  } else if (!pending && !manual) {
    const TimePoint due = active->activates + keyset.rotation_period - keyset.prepublish;
    if (now >= due)
      out.generate = std::max(active->activates + keyset.rotation_period, now + keyset.prepublish);
    else
      out.next = std::min(out.next, due);
  }
  if (out.generate) out.next = now;  // look again once the new key exists
  return out;
}

}  // namespace hsmsignd::keyring
