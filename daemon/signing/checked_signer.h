// A token key that checks its own signatures before they leave: a faulty token must not hand out a bad
// signature, and a faulty RSA-CRT signature gives the private key away, so RSA is always checked.
#pragma once

#include <atomic>
#include <memory>

#include "crypto/openssl_ptr.h"
#include "sign.h"

namespace hsmsignd::signing {

enum class VerifyPolicy {
  all,      // every signature
  sampled,  // RSA always; EC and EdDSA one in 32
};

class CheckedSigner {
 public:
  static pkcs11::Result<std::shared_ptr<CheckedSigner>> make(std::shared_ptr<pkcs11::Signer> signer,
                                                            VerifyPolicy policy);

  // The JWS signature over `message` (the signing input), verified as the policy says.
  pkcs11::Result<Bytes> sign(ByteView message);
  // The same over a digest the caller computed (not for EdDSA).
  pkcs11::Result<Bytes> sign_digest(ByteView digest);

  // Whether `signature` is this key's JWS signature over `message`: for tokens presented to be verified.
  bool verify(ByteView message, ByteView signature) const;

  Algorithm algorithm() const { return signer_->algorithm(); }
  const PublicKey& public_key() const { return signer_->public_key(); }

  // Signatures the token returned that failed verification, process-wide.
  static std::uint64_t caught_faults();

  CheckedSigner(std::shared_ptr<pkcs11::Signer> signer, crypto::EvpPkeyPtr key, VerifyPolicy policy);

 private:
  bool should_verify();
  pkcs11::Result<Bytes> checked(pkcs11::Result<Bytes> signature, bool ok);

  std::shared_ptr<pkcs11::Signer> signer_;
  crypto::EvpPkeyPtr key_;
  VerifyPolicy policy_;
  std::atomic<std::uint32_t> count_{0};
};

}  // namespace hsmsignd::signing
