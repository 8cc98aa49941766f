// Public keys as JWKs (RFC 7517/7518, OKP from RFC 8037) and their RFC 7638 thumbprints, which
// hsmsignd uses as key ids.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "hsmsignd/public_key.h"
#include "hsmsignd/result.h"
#include "jose/jose_error.h"

namespace hsmsignd::jose {

// The public members only: EC {kty, crv, x, y}, RSA {kty, n, e}, OKP {kty, crv, x}.
// Precondition for this and the two below: `key` is well-formed (as from_jwk, crypto::from_evp or the
// pkcs11 layer produce it). A malformed key throws std::invalid_argument; it is never read out of bounds.
nlohmann::json to_jwk(const PublicKey& key);

// to_jwk plus "kid", "alg" and "use":"sig": the entry hsmsignd publishes in its JWKS.
nlohmann::json to_published_jwk(const PublicKey& key, std::string_view kid);

// RFC 7638 JWK thumbprint: base64url(SHA-256(canonical JSON of the required members)).
std::string thumbprint(const PublicKey& key);

// Parses a public JWK for `algorithm`. Refuses a kty/crv that does not fit the algorithm, an "alg"
// member naming another algorithm, private members (d, p, q, dp, dq, qi, oth, k), EC coordinates that
// are not exactly the field size, and any key crypto::to_evp refuses (off-curve point, weak RSA).
// Leading zero bytes of n and e are stripped.
Expected<PublicKey, JoseError> from_jwk(const nlohmann::json& jwk, Algorithm algorithm);

}  // namespace hsmsignd::jose
