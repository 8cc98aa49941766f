// What the frames between the front and a signer say: the request types, the answers, the events, and
// how the PKCS#11 layer's values are written into a payload and read back (with their bounds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "call_stats.h"
#include "digest_scheme.h"
#include "keys.h"
#include "protocol/wire.h"
#include "token.h"

namespace hsmsignd::protocol {

enum class Type : std::uint8_t {
  // requests, from the front
  sign = 1,               // {u8 algorithm, u8 digest, u8 hash, u8 padding, bytes key id, bytes data} -> {bytes signature, u32 queued µs, u32 signing µs}
  list_keys = 2,          // {} -> {count, KeyObject...}
  list_public_keys = 3,   // {} -> {count, {bytes id, bytes label}...}
  generate = 4,           // {u8 algorithm, u32 rsa bits, bytes id, bytes label} -> KeyObject
  export_public_key = 5,  // {bytes id, u8 algorithm} -> PublicKey
  set_label = 6,          // {bytes id, bytes label} -> {}
  destroy = 7,            // {bytes id} -> {}
  stats = 8,              // {} -> SignerStats
  // answers, with the request's id
  ok = 128,
  error = 129,  // {u8 kind, bytes function, u64 CKR_ code, bytes detail}
  // events, id 0
  hello = 160,      // the signer is logged in: TokenInfo, u32 sessions
  fatal = 161,      // the signer cannot start: {u8 exit status, bytes message}
  recovered = 162,  // the token answers again: {u64 outage ms, error that made it lost}
};

constexpr std::size_t kMaxId = 256;        // CKA_ID
constexpr std::size_t kMaxLabel = 1024;    // CKA_LABEL, of any key on the token
constexpr std::size_t kMaxText = 4096;     // an error's detail, a token's strings
constexpr std::size_t kMaxKeyPart = 1024;  // a public point, modulus or exponent (RSA-4096: 512 bytes)

std::uint8_t algorithm_code(Algorithm a);
Algorithm read_algorithm(Reader& r);

struct SignRequest {
  Algorithm algorithm = Algorithm::ES256;
  bool digest = false;  // `data` is the digest the token signs (ECDSA), not the message
  DigestScheme scheme;  // how the digest was made and is padded; the algorithm's own for a message
  Bytes key_id;
  std::string_view data;  // points into the frame
};
// With the algorithm's own scheme (JWS signing inputs and their digests).
std::string sign_request(std::uint32_t id, Algorithm algorithm, bool digest, ByteView key_id, std::string_view data);
std::string sign_request(std::uint32_t id, Algorithm algorithm, bool digest, DigestScheme scheme, ByteView key_id,
                         std::string_view data);
// Refuses what the front never sends: a scheme the key type cannot use, another scheme than the
// algorithm's for a message, a digest of the wrong length.
SignRequest read_sign_request(Reader& r);

struct SignAnswer {
  Bytes signature;
  std::uint32_t queued_us = 0, signing_us = 0;
};

void write_error(Writer& w, const pkcs11::Error& e);
pkcs11::Error read_error(Reader& r);
std::string error_frame(std::uint32_t id, const pkcs11::Error& e);

void write_key(Writer& w, const pkcs11::KeyObject& k);
pkcs11::KeyObject read_key(Reader& r);
void write_keys(Writer& w, const std::vector<pkcs11::KeyObject>& keys);
std::vector<pkcs11::KeyObject> read_keys(Reader& r);
void write_public_objects(Writer& w, const std::vector<pkcs11::PublicObject>& objects);
std::vector<pkcs11::PublicObject> read_public_objects(Reader& r);
void write_public_key(Writer& w, const PublicKey& k);
PublicKey read_public_key(Reader& r);
void write_token(Writer& w, const pkcs11::TokenInfo& t);
pkcs11::TokenInfo read_token(Reader& r);
pkcs11::KeySpec read_key_spec(Reader& r);

// What a signer reports of itself, for /metrics and /healthz.
struct SignerStats {
  std::uint32_t sessions_in_use = 0, sessions = 0;
  std::uint64_t recoveries = 0, failed_recoveries = 0;
  bool token_lost = false;
  std::vector<pkcs11::CallStatSnapshot> calls;
};
void write_stats(Writer& w, const SignerStats& s);
SignerStats read_stats(Reader& r);

}  // namespace hsmsignd::protocol
