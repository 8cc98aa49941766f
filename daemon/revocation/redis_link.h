// What the Redis store's two threads share: where Redis is, how long entries matter, the clock, and
// how a thread reports that its own connection went down or came back.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "revocation/redis_address.h"
#include "revocation/redis_layout.h"

namespace hsmsignd::revocation {

struct RedisLink {
  RedisAddress address;
  std::string password;  // empty: no AUTH. Never logged, never in an error string.
  redis_layout::Lifetimes lifetimes;
  std::function<std::int64_t()> now;  // unix seconds
};

// A thread's connection is up (reason empty) or down (reason says why). Called on every change.
using RedisLinkReport = std::function<void(bool up, const std::string& reason)>;

}  // namespace hsmsignd::revocation
