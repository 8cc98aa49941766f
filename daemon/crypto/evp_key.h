// PublicKey (raw material from the token or a JWK) <-> OpenSSL EVP_PKEY. This is where untrusted key
// material is checked: sizes, the point being on its curve, RSA strength.
#pragma once

#include <openssl/evp.h>

#include <cstddef>

#include "crypto/crypto_error.h"
#include "crypto/openssl_ptr.h"
#include "hsmsignd/public_key.h"
#include "hsmsignd/result.h"

namespace hsmsignd::crypto {

// Smallest RSA modulus accepted: NIST SP 800-131A retired anything shorter.
inline constexpr std::size_t kMinRsaBits = 2048;
// Largest accepted, so a hostile key cannot make verification arbitrarily slow.
inline constexpr std::size_t kMaxRsaBits = 16384;

// Builds an EVP public key for `key.algorithm`. Refuses an EC point that is not the uncompressed
// 65-byte (P-256) or 97-byte (P-384) form or is not on the curve, an Ed25519 key that is not 32 bytes,
// and an RSA key outside [kMinRsaBits, kMaxRsaBits], with an even modulus, or whose exponent is even,
// 1 or over 64 bits.
Expected<EvpPkeyPtr, CryptoError> to_evp(const PublicKey& key);

// The DER SubjectPublicKeyInfo of `pkey` (RFC 5280 §4.1.2.7): the form X.509 and TLS software names a
// public key in.
Expected<Bytes, CryptoError> to_spki(EVP_PKEY* pkey);

// The inverse: the public half of `pkey`, which must be a key for `algorithm` (right type, right curve).
Expected<PublicKey, CryptoError> from_evp(const EVP_PKEY* pkey, Algorithm algorithm);

}  // namespace hsmsignd::crypto
