#include "signing/checked_signer.h"

#include "crypto/digest.h"
#include "crypto/evp_key.h"
#include "crypto/verify.h"
#include "log/log.h"

namespace hsmsignd::signing {
namespace {
std::atomic<std::uint64_t> faults{0};
}

std::uint64_t CheckedSigner::caught_faults() { return faults.load(); }

CheckedSigner::CheckedSigner(std::shared_ptr<pkcs11::Signer> signer, crypto::EvpPkeyPtr key, VerifyPolicy policy)
    : signer_(std::move(signer)), key_(std::move(key)), policy_(policy) {}

pkcs11::Result<std::shared_ptr<CheckedSigner>> CheckedSigner::make(std::shared_ptr<pkcs11::Signer> signer,
                                                                  VerifyPolicy policy) {
  auto key = crypto::to_evp(signer->public_key());
  if (!key) return pkcs11::Error::refused("the token's public key is unusable: " + key.error().what());
  // The hash of the checks and of ECDSA signatures, fetched now: an OpenSSL without it fails the start
  // (md_for throws), not a signer thread.
  try {
    (void)crypto::md_for(signer->algorithm());
  } catch (const std::exception& e) {
    return pkcs11::Error::refused(e.what());
  }
  return std::make_shared<CheckedSigner>(std::move(signer), std::move(*key), policy);
}

bool CheckedSigner::verify(ByteView message, ByteView signature) const {
  return crypto::verify(key_.get(), signer_->algorithm(), message, signature);
}

bool CheckedSigner::should_verify() {
  if (policy_ == VerifyPolicy::all || key_type(signer_->algorithm()) == KeyType::RSA) return true;
  return count_.fetch_add(1, std::memory_order_relaxed) % 32 == 0;
}

pkcs11::Result<Bytes> CheckedSigner::checked(pkcs11::Result<Bytes> signature, bool ok) {
  if (ok) return signature;
  faults.fetch_add(1, std::memory_order_relaxed);
  log::error("signature_fault", {{"algorithm", std::string(name(signer_->algorithm()))}});
  return pkcs11::Error::faulty_signature("C_Sign");
}

pkcs11::Result<Bytes> CheckedSigner::sign(ByteView message) {
  // ECDSA signs a digest: made once here, it serves both the token and the check.
  if (key_type(algorithm()) == KeyType::EC) {
    const Bytes digest = crypto::digest_for(algorithm(), message);
    return sign_digest(digest);
  }
  auto signature = signer_->sign(message);
  if (!signature || !should_verify()) return signature;
  const bool ok = crypto::verify(key_.get(), signer_->algorithm(), message, *signature);
  return checked(std::move(signature), ok);
}

pkcs11::Result<Bytes> CheckedSigner::sign_digest(ByteView digest) {
  auto signature = signer_->sign_digest(digest);
  if (!signature || !should_verify()) return signature;
  const bool ok = crypto::verify_digest(key_.get(), signer_->algorithm(), digest, *signature);
  return checked(std::move(signature), ok);
}

}  // namespace hsmsignd::signing
