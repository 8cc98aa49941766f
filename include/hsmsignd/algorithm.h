// The JWS algorithms hsmsignd signs with. Asymmetric only: there is deliberately no "none" and no HMAC.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace hsmsignd {

enum class Algorithm { ES256, ES384, RS256, PS256, EdDSA };

enum class KeyType { EC, RSA, OKP };  // the JWK "kty" of each algorithm's keys

constexpr std::string_view name(Algorithm a) {
  switch (a) {
    case Algorithm::ES256: return "ES256";
    case Algorithm::ES384: return "ES384";
    case Algorithm::RS256: return "RS256";
    case Algorithm::PS256: return "PS256";
    case Algorithm::EdDSA: return "EdDSA";
  }
  return "?";
}

constexpr std::optional<Algorithm> parse_algorithm(std::string_view s) {
  for (auto a : {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA})
    if (name(a) == s) return a;
  return std::nullopt;
}

constexpr KeyType key_type(Algorithm a) {
  switch (a) {
    case Algorithm::ES256:
    case Algorithm::ES384: return KeyType::EC;
    case Algorithm::RS256:
    case Algorithm::PS256: return KeyType::RSA;
    case Algorithm::EdDSA: return KeyType::OKP;
  }
  return KeyType::EC;
}

// Size in bytes of one ECDSA coordinate (and so half of a JWS ECDSA signature); 0 for other types.
constexpr std::size_t ec_field_size(Algorithm a) {
  switch (a) {
    case Algorithm::ES256: return 32;
    case Algorithm::ES384: return 48;
    default: return 0;
  }
}

// Digest length of the hash the algorithm signs over (SHA-256 or SHA-384); 0 for EdDSA, which signs
// the whole message.
constexpr std::size_t digest_size(Algorithm a) {
  switch (a) {
    case Algorithm::ES384: return 48;
    case Algorithm::EdDSA: return 0;
    default: return 32;
  }
}

}  // namespace hsmsignd
