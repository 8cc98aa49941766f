// Software keys for tests that need a signer: what the token does, done by OpenSSL in-process.
#pragma once

#include <openssl/evp.h>

#include "crypto/openssl_ptr.h"
#include "hsmsignd/algorithm.h"
#include "hsmsignd/bytes.h"
#include "hsmsignd/public_key.h"

namespace hsmsignd::test {

// A fresh key pair for `algorithm` (RSA: 2048 bits).
crypto::EvpPkeyPtr generate_key(Algorithm algorithm);

// One key pair per algorithm for the whole run: RSA generation is too slow to repeat in every test.
EVP_PKEY* shared_key(Algorithm algorithm);

// The public half of shared_key(algorithm), via crypto::from_evp.
PublicKey shared_public_key(Algorithm algorithm);

// Signs `message` as a JWS signer would and returns the signature in JWS form (ECDSA as r‖s).
Bytes sign(EVP_PKEY* key, Algorithm algorithm, ByteView message);

}  // namespace hsmsignd::test
