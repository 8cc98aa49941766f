// Signing inside the token. Signatures come back in JWS form (ECDSA as raw r‖s), and their length is
// checked: the token's output is not trusted blindly.
#pragma once

#include <atomic>
#include <memory>

#include "digest_scheme.h"
#include "keys.h"
#include "token_rules.h"

namespace hsmsignd::pkcs11 {

// A private key that passed the custody checks and fits its algorithm.
struct SigningKey {
  Bytes id;
  ObjectHandle handle = 0;
  Algorithm algorithm = Algorithm::ES256;
  std::size_t signature_size = 0;
  Hashing hashing = Hashing::token;  // RS256 and PS256: where sign() hashes the message (the plan's choice)
};

// How this process signs on its token: the mechanisms chosen at start, and the custody rule.
struct SigningRules {
  SignPlan plan;
  CustodyPolicy custody;
};

// Refuses a key that fails the custody policy (local unless not required, never-extractable,
// always-sensitive, sensitive and unextractable), and one that does not fit the algorithm.
Result<SigningKey> signing_key(const KeyObject& key, Algorithm algorithm, const SigningRules& rules = {});

// Signs the message as JWS `alg` does: ES256/ES384 hash here and the token signs the digest (CKM_ECDSA);
// RS256 and PS256 hash inside the token (CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS), or, when the plan
// says so, here, the token padding and signing the digest (as sign_digest does); EdDSA (CKM_EDDSA).
Result<Bytes> sign(SessionRef session, const SigningKey& key, ByteView message);
// Signs a digest the caller computed with `scheme.hash`: CKM_ECDSA on the digest (the token truncates it
// as ECDSA does), CKM_RSA_PKCS on its DER DigestInfo, or CKM_RSA_PKCS_PSS with MGF1 of the same hash and
// a salt as long as the digest. EdDSA signs messages only.
Result<Bytes> sign_digest(SessionRef session, const SigningKey& key, ByteView digest, DigestScheme scheme);

// One key on a session pool, for many threads at once. Finds the key again by CKA_ID, and checks its
// custody again, when the token no longer knows the cached handle or the module was re-initialised.
class Signer {
 public:
  static Result<std::shared_ptr<Signer>> open(SessionPool& pool, ByteView id, Algorithm algorithm,
                                              const SigningRules& rules = {});
  // For a key the caller has just found on `session` (one of `pool`'s).
  static Result<std::shared_ptr<Signer>> open(SessionPool& pool, SessionRef session, const KeyObject& key,
                                              Algorithm algorithm, const SigningRules& rules = {});

  Result<Bytes> sign(ByteView message);
  Result<Bytes> sign_digest(ByteView digest) { return sign_digest(digest, default_scheme(algorithm_)); }
  Result<Bytes> sign_digest(ByteView digest, DigestScheme scheme);

  const Bytes& id() const { return id_; }
  Algorithm algorithm() const { return algorithm_; }
  const PublicKey& public_key() const { return public_key_; }

  Signer(SessionPool& pool, SigningKey key, PublicKey public_key, const SigningRules& rules);  // use open()

 private:
  template <class F>
  Result<Bytes> with_key(F&& fn);
  Result<SigningKey> reload(SessionRef session);

  SessionPool& pool_;
  const Bytes id_;
  const Algorithm algorithm_;
  const std::size_t signature_size_;
  const SigningRules rules_;
  const PublicKey public_key_;
  std::atomic<ObjectHandle> handle_;
  std::atomic<std::uint64_t> handle_generation_;  // the pool's generation handle_ was found in
};

}  // namespace hsmsignd::pkcs11
