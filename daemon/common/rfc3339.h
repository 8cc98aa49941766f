// RFC 3339 UTC timestamps: "2026-11-29T06:02:41Z", or with microseconds for the audit log.
#pragma once

#include <chrono>
#include <string>

namespace hsmsignd {

std::string rfc3339(std::chrono::sys_seconds t);
std::string rfc3339_micros(std::chrono::system_clock::time_point t);

}  // namespace hsmsignd
