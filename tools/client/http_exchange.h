// One HTTP/1.1 request and its answer over a fresh connection, closed before returning.
#pragma once

#include <string_view>

#include "hsmsignd/client.h"

namespace hsmsignd::client::detail {

// The most of an answer's body we read: far above anything the daemon sends (its JWK Set is a few KiB),
// and a bound on what a wrong peer at the socket can make us allocate.
inline constexpr std::size_t kMaxBody = 16 * 1024 * 1024;
// The status line and header fields; the daemon's are a few hundred bytes.
inline constexpr std::size_t kMaxHead = 64 * 1024;

// Any status is a Response; only a call that got no well-formed answer is an Error.
Result<Response> exchange(const Options& options, std::string_view method, std::string_view target,
                          std::string_view body);

}  // namespace hsmsignd::client::detail
