// RFC 3339 UTC timestamps: "2026-11-29T06:02:41Z", or with microseconds for the audit log; and the
// unix seconds that tokens carry.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hsmsignd {

std::string rfc3339(std::chrono::sys_seconds t);
std::string rfc3339_micros(std::chrono::system_clock::time_point t);

// Now, in whole unix seconds (a JWT's iat, exp and nbf).
inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace hsmsignd
