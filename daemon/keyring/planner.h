// What one keyset's keys need next, decided from the keys on the token and the time alone: pure, so
// every edge is tested with an injected clock, and idempotent, so running it again after a crash (or in
// a second daemon on the same token) leads to the same keys.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "config/config.h"
#include "hsmsignd/bytes.h"
#include "keyring/lifecycle.h"

namespace hsmsignd::keyring {

struct KeyRecord {
  Bytes id;  // CKA_ID
  KeyLabel label;
};

struct Plan {
  struct Live {
    Bytes id;
    Schedule schedule;  // pending, active or retiring
  };
  std::vector<Live> live;                // what is published, oldest activation first
  std::vector<Bytes> destroy;            // retired keys (with destroy_retired) and race losers
  std::optional<TimePoint> generate;     // generate a key now, activating at this time
  TimePoint next;                        // when the plan changes by itself
};

// Rules, in order:
// - a key an operator retired is dropped (and destroyed with destroy_retired);
// - two pending keys activating less than half a rotation period apart come from a race between
//   daemons: the earlier (then the smaller CKA_ID) stays, the other is destroyed; no pending key ever
//   signed;
// - no key active yet: generate one active now;
// - no pending key and the active one reaches activates + rotation_period − prepublish: generate the
//   next, activating at activates + rotation_period, or `prepublish` from now if that is later (a daemon
//   that was down does not publish a key late and activate it early);
// - a key past retires (its successor's activation + retire_after) is retired: dropped, and destroyed
//   with destroy_retired.
// A manual keyset (rotation = "manual") is scheduled by schedule_manual: nothing is generated but its
// first active key, and only an operator's retirement (the label) ends a key.
Plan plan(const config::KeysetConfig& keyset, std::vector<KeyRecord> keys, TimePoint now);

}  // namespace hsmsignd::keyring
