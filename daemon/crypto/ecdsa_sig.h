// ECDSA signatures in their two shapes: JWS (and PKCS#11 CKM_ECDSA) use the fixed-width r‖s form,
// OpenSSL uses DER. Neither side is trusted: a value longer than the field, an odd length or loose DER
// is refused, as ssh-agent refuses a token's malformed ECDSA signature.
#pragma once

#include <cstddef>

#include "crypto/crypto_error.h"
#include "hsmsignd/bytes.h"
#include "hsmsignd/result.h"

namespace hsmsignd::crypto {

// r‖s, each exactly `field_size` bytes (32 for P-256, 48 for P-384), to a DER ECDSA-Sig-Value.
// Refuses any other length and an r or s of zero.
Expected<Bytes, CryptoError> ecdsa_raw_to_der(ByteView raw, std::size_t field_size);

// A DER ECDSA-Sig-Value to r‖s, each left-padded to `field_size`. Refuses non-canonical DER, trailing
// bytes, negative or zero values and values longer than `field_size`.
Expected<Bytes, CryptoError> ecdsa_der_to_raw(ByteView der, std::size_t field_size);

}  // namespace hsmsignd::crypto
