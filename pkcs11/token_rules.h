// What each kind of token needs, in one place: the attributes of a new key pair, the mechanism each
// signature uses (and its fallback when the token lacks the first choice), and when a failed call is worth
// a module re-initialisation. The token's mechanism list decides, never its name or model: the same
// module can sit behind p11-kit remote, which drops mechanisms of its own accord.
// Pure functions: tested without a token.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "hsmsignd/algorithm.h"

namespace hsmsignd::pkcs11 {

// One entry of C_GetMechanismList with its C_GetMechanismInfo.
struct MechanismInfo {
  unsigned long type = 0;
  unsigned long min_key_size = 0;  // bits for RSA (PKCS#11 2.40 §2.1.7)
  unsigned long max_key_size = 0;
  unsigned long flags = 0;  // CKF_SIGN, CKF_GENERATE_KEY_PAIR, ...
};

// Where the hash of a message signature is made: inside the token (CKM_SHA256_RSA_PKCS,
// CKM_SHA256_RSA_PKCS_PSS) or in this process, the token then padding and signing the digest (CKM_RSA_PKCS
// over the DigestInfo, CKM_RSA_PKCS_PSS). Both make the same signature. ES256/ES384 always hash here
// (CKM_ECDSA on the digest), EdDSA never (CKM_EDDSA signs the message).
enum class Hashing : std::uint8_t { token, here };

struct SignPlan {
  Hashing rs256 = Hashing::token;
  Hashing ps256 = Hashing::token;

  Hashing of(Algorithm a) const {
    return a == Algorithm::RS256 ? rs256 : a == Algorithm::PS256 ? ps256 : Hashing::here;
  }
};

// What a keyset asks of the token.
struct KeysetNeeds {
  std::string name;
  Algorithm algorithm = Algorithm::ES256;
  unsigned rsa_bits = 2048;
  bool digests = false;  // usage "tls": /v1/sign hands over digests, with either RSA padding
};

struct Capabilities {
  // One line per keyset the token cannot serve: `keyset "ed": the token has no CKM_EC_EDWARDS_KEY_PAIR_GEN`.
  std::vector<std::string> refusals;
  // One line per fallback taken, for the log and --check.
  std::vector<std::string> fallbacks;
  SignPlan plan;
};

// The plan for these keysets on a token with these mechanisms, and the keysets it cannot serve.
Capabilities check_capabilities(const std::vector<MechanismInfo>& mechanisms, const std::vector<KeysetNeeds>& keysets);

// "CKM_ECDSA" for its number; "CKM_0x…" for one this table does not know.
std::string mechanism_name(unsigned long type);

// A usage attribute of a new key pair (CKA_SIGN, ...) and the value it is given.
using UsageAttribute = std::pair<unsigned long, bool>;

struct KeyUsage {
  std::vector<UsageAttribute> public_half;
  std::vector<UsageAttribute> private_half;
};

// The usage attributes of a new key pair for `algorithm`, with the reasons in token_rules.cpp.
KeyUsage key_usage(Algorithm algorithm);

// Whether C_DestroyObject failing with `error` is worth one C_Finalize + C_Initialize and one more try.
bool destroy_retry_after_reinitialisation(const Error& error);

// Whether a key looked up by CKA_ID and not found (`error`) is worth one C_Finalize + C_Initialize and
// one more look.
bool find_again_after_reinitialisation(const Error& error);

}  // namespace hsmsignd::pkcs11
