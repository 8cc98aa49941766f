// Conditional GETs of the public documents (the JWKS, the Status Lists).
#pragma once

#include <string_view>

namespace hsmsignd::api {

// If-None-Match (RFC 9110 §13.1.2): true when `header` ("*", or a list of entity tags, compared weakly: a
// W/ prefix is ignored) matches `etag`, so the answer is 304.
bool none_match_fails(std::string_view header, std::string_view etag);

}  // namespace hsmsignd::api
