// The hashes JWS signing needs. The token signs a digest for ES*/RS256/PS256, so the daemon hashes the
// signing input here first.
#pragma once

#include <openssl/evp.h>

#include <cstddef>

#include "hsmsignd/algorithm.h"
#include "hsmsignd/bytes.h"

namespace hsmsignd::crypto {

Bytes sha256(ByteView data);
Bytes sha384(ByteView data);

// The digest `algorithm` signs: SHA-256 for ES256/RS256/PS256, SHA-384 for ES384.
// Precondition: algorithm != EdDSA. Ed25519 signs the whole message and has no separate digest; asking
// for one is a programming error and throws std::invalid_argument rather than return bytes that a
// caller could mistake for something to sign.
Bytes digest_for(Algorithm algorithm, ByteView message);

// SHA-256, SHA-384 or SHA-512 by the length of its output (32, 48, 64), fetched once; nullptr for any
// other length. For digests hashed by someone else (/v1/sign), known by their hash's size alone.
const EVP_MD* sha2_md(std::size_t digest_size);

// The SHA-2 implementation `algorithm` uses, fetched once and kept for the life of the process;
// nullptr for EdDSA (which OpenSSL wants as "no digest").
const EVP_MD* md_for(Algorithm algorithm);

}  // namespace hsmsignd::crypto
