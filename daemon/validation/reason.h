// Why a token is not valid: the first check it failed, as /v1/verify names it.
#pragma once

#include <array>
#include <string_view>

namespace hsmsignd::validation {

enum class Reason {
  valid,
  malformed,               // not three base64url parts, or header or payload not a JSON object
  bad_header,              // a member hsmsignd never writes and a verifier must not follow (crit, jku, jwk, x5u, x5c), or no kid
  alg_not_allowed,         // none, HS*, or not the algorithm of the key the kid names: algorithm confusion
  unknown_kid,             // no published key of this daemon
  pending_kid,             // a prepublished key, which has never signed
  bad_signature,
  missing_claim,           // iss, sub, aud, exp, nbf, iat or jti missing or of the wrong type
  wrong_issuer,            // no client of this daemon issues for it
  wrong_audience,
  expired,
  not_yet_valid,
  revoked,
  revocation_unavailable,  // the store cannot be reached and the daemon fails closed
};
inline constexpr std::size_t kReasons = 14;

constexpr std::string_view name(Reason r) {
  constexpr std::array<std::string_view, kReasons> names{
      "valid",        "malformed",      "bad_header", "alg_not_allowed", "unknown_kid",
      "pending_kid",  "bad_signature",  "missing_claim", "wrong_issuer", "wrong_audience",
      "expired",      "not_yet_valid",  "revoked",    "revocation_unavailable"};
  return names[static_cast<std::size_t>(r)];
}

}  // namespace hsmsignd::validation
