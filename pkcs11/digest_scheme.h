// How a digest handed to the token was made and is to be padded: the SHA-2 hash that made it, and for RSA
// keys PKCS#1 v1.5 or PSS. A JWS algorithm has one scheme of its own; /v1/sign on a tls keyset may ask
// for the others (X.509 and TLS 1.3 sign SHA-384 and SHA-512 digests, and RSA-PSS, with any key).
// Names as /v1/sign spells them. No Cryptoki here: the front, the frames and the signer all use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "hsmsignd/algorithm.h"

namespace hsmsignd {

enum class Hash : std::uint8_t { sha256, sha384, sha512 };
enum class Padding : std::uint8_t { none, pkcs1, pss };  // none: EC keys, whose signatures have no padding

struct DigestScheme {
  Hash hash = Hash::sha256;
  Padding padding = Padding::none;
  friend constexpr bool operator==(const DigestScheme&, const DigestScheme&) = default;
};

constexpr std::size_t hash_size(Hash h) { return h == Hash::sha512 ? 64 : h == Hash::sha384 ? 48 : 32; }

constexpr std::string_view name(Hash h) {
  switch (h) {
    case Hash::sha256: return "SHA-256";
    case Hash::sha384: return "SHA-384";
    case Hash::sha512: return "SHA-512";
  }
  return "?";
}

constexpr std::string_view name(Padding p) {
  switch (p) {
    case Padding::none: return "none";
    case Padding::pkcs1: return "pkcs1";
    case Padding::pss: return "pss";
  }
  return "?";
}

constexpr std::optional<Hash> parse_hash(std::string_view s) {
  for (Hash h : {Hash::sha256, Hash::sha384, Hash::sha512})
    if (name(h) == s) return h;
  return std::nullopt;
}

// "pkcs1" or "pss": "none" is not something a request can ask for.
constexpr std::optional<Padding> parse_padding(std::string_view s) {
  for (Padding p : {Padding::pkcs1, Padding::pss})
    if (name(p) == s) return p;
  return std::nullopt;
}

// The scheme of the JWS algorithm itself: SHA-256 (SHA-384 for ES384); PKCS#1 v1.5 for RS256, PSS for
// PS256, none for EC. (EdDSA has no digest; its entry is never used.)
constexpr DigestScheme default_scheme(Algorithm a) {
  const Hash hash = a == Algorithm::ES384 ? Hash::sha384 : Hash::sha256;
  if (a == Algorithm::RS256) return {hash, Padding::pkcs1};
  if (a == Algorithm::PS256) return {hash, Padding::pss};
  return {hash, Padding::none};
}

// Whether keys of `a` can sign a digest with `s` at all: any hash; RSA keys with either padding, EC keys
// with none. (Whether a keyset allows it is the policy's question.)
constexpr bool scheme_fits(Algorithm a, DigestScheme s) {
  switch (key_type(a)) {
    case KeyType::EC: return s.padding == Padding::none;
    case KeyType::RSA: return s.padding != Padding::none;
    case KeyType::OKP: return false;
  }
  return false;
}

}  // namespace hsmsignd
