// A token key as the front knows it (CKA_ID, algorithm, public key), and the check of every signature a
// signer process returns for it before it leaves: a faulty token must not hand out a bad signature, and
// a faulty RSA-CRT signature gives the private key away, so RSA is always checked.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "crypto/openssl_ptr.h"
#include "digest_scheme.h"
#include "error.h"
#include "hsmsignd/public_key.h"

namespace hsmsignd::signing {

enum class VerifyPolicy {
  all,      // every signature
  sampled,  // RSA always; EC and EdDSA one in 32
};

class CheckedSigner {
 public:
  // The public key is decoded into an EVP_PKEY once, here: never per request.
  static pkcs11::Result<std::shared_ptr<CheckedSigner>> make(Bytes id, PublicKey public_key, VerifyPolicy policy);

  // What the token signs for a JWS signing input, when it is not the message itself: ECDSA signs a
  // digest, made here once for the token and the check. RSA and EdDSA hash inside the token.
  std::optional<std::string> token_digest(std::string_view message) const;
  // The token's answer for `input` (the message, or the digest when `digest`), checked as the policy says.
  pkcs11::Result<Bytes> check(bool digest, std::string_view input, pkcs11::Result<Bytes> signature) {
    return check(digest, default_scheme(algorithm()), input, std::move(signature));
  }
  // The same for a digest made and padded as `scheme` says (/v1/sign on a tls keyset).
  pkcs11::Result<Bytes> check(bool digest, DigestScheme scheme, std::string_view input, pkcs11::Result<Bytes> signature);

  // Whether `signature` is this key's JWS signature over `message`: for tokens presented to be verified.
  bool verify(ByteView message, ByteView signature) const;

  const Bytes& id() const { return id_; }
  Algorithm algorithm() const { return public_key_.algorithm; }
  const PublicKey& public_key() const { return public_key_; }
  // The DER SubjectPublicKeyInfo of the key: how X.509 and TLS software (an OpenSSL provider) name it.
  const Bytes& spki() const { return spki_; }

  // Signatures the token returned that failed verification, process-wide.
  static std::uint64_t caught_faults();

  CheckedSigner(Bytes id, PublicKey public_key, crypto::EvpPkeyPtr key, Bytes spki, VerifyPolicy policy);

 private:
  bool should_verify();

  const Bytes id_;
  const PublicKey public_key_;
  crypto::EvpPkeyPtr key_;
  const Bytes spki_;
  VerifyPolicy policy_;
  std::atomic<std::uint32_t> count_{0};
};

}  // namespace hsmsignd::signing
