// One revocation, as every store keeps it: a token by its jti, or every token of a subject or of a
// keyset issued before an instant.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hsmsignd::revocation {

enum class Kind {
  jti,      // the token (iss, jti); `at` is its exp
  subject,  // every token of (iss, sub) with iat < `at`
  keyset,   // every token signed by a key of keyset `name` with iat < `at`; `iss` is empty
};

// The latest instant anything revocation takes: the year 9999. Nothing real is later, and sums with it
// cannot overflow.
inline constexpr std::int64_t kLatestInstant = 253'402'300'799;

constexpr std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::jti: return "jti";
    case Kind::subject: return "subject";
    case Kind::keyset: return "keyset";
  }
  return "?";
}

struct Entry {
  Kind kind = Kind::jti;
  std::string iss;           // the issuer it applies to (empty for a keyset)
  std::string name;          // the jti, the sub, or the keyset
  std::int64_t at = 0;       // unix seconds: the token's exp, or the not-before instant
  std::int64_t expires = 0;  // unix seconds after which no token it names can be valid: then it is purged
  // A jti entry made from the token itself: the token's Status List entry, whose bit it sets.
  std::string status_uri{};
  std::int64_t status_idx = -1;
};

}  // namespace hsmsignd::revocation
