// Signature verification in JWS form, for tests and for the daemon's check of what the token returned
// ("do not trust the token's output"). Every malformed input — key, signature, digest — is a plain
// `false`: a verifier has no better answer to give, and it must never crash on hostile bytes.
#pragma once

#include <openssl/evp.h>

#include "hsmsignd/algorithm.h"
#include "hsmsignd/bytes.h"
#include "hsmsignd/public_key.h"

namespace hsmsignd::crypto {

// Verifies `jws_signature` over the whole `message` (the JWS signing input):
//   ES256/ES384: raw r‖s; RS256: PKCS#1 v1.5 with SHA-256;
//   PS256: PSS, SHA-256, MGF1-SHA-256, salt length 32; EdDSA: pure Ed25519.
bool verify(const PublicKey& key, ByteView message, ByteView jws_signature);

// As above over a digest already computed with digest_for(key.algorithm, …): the form the token signs.
// Always false for EdDSA, which has no separate digest.
bool verify_digest(const PublicKey& key, ByteView digest, ByteView jws_signature);

// The same two checks against a key already built with to_evp(), for callers that verify often with one
// key: building the EVP key costs about as much as an ECDSA verification. False if `pkey` is not a key
// for `algorithm` (type, and curve for ES*).
bool verify(EVP_PKEY* pkey, Algorithm algorithm, ByteView message, ByteView jws_signature);
bool verify_digest(EVP_PKEY* pkey, Algorithm algorithm, ByteView digest, ByteView jws_signature);

// How an RSA signature pads its digest. PSS always uses MGF1 with the digest's own hash and a salt as
// long as the digest (RFC 8017's recommendation; what JWS PS256, TLS 1.3 and RFC 4055 use).
enum class RsaPadding { pkcs1, pss };

// As verify_digest above, for a digest made with `md` (sha2_md), which need not be the algorithm's own:
// a tls keyset signs SHA-256, SHA-384 and SHA-512 digests with any key. ECDSA truncates the digest to
// the curve's size as the token does; `padding` is read for RSA keys only. False unless `digest` is
// exactly `md`'s size.
bool verify_digest(EVP_PKEY* pkey, Algorithm algorithm, const EVP_MD* md, RsaPadding padding, ByteView digest,
                   ByteView jws_signature);

}  // namespace hsmsignd::crypto
