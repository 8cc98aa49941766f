// The public half of a signing key, as raw big-endian material: what both the JWK and OpenSSL need.
#pragma once

#include "hsmsignd/algorithm.h"
#include "hsmsignd/bytes.h"

namespace hsmsignd {

struct PublicKey {
  Algorithm algorithm;
  Bytes point;     // EC: uncompressed SEC1 point 04‖X‖Y. EdDSA: the 32-byte Ed25519 key.
  Bytes modulus;   // RSA: n, big-endian, no leading zero
  Bytes exponent;  // RSA: e, big-endian, no leading zero

  bool operator==(const PublicKey&) const = default;
};

}  // namespace hsmsignd
