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

CheckedSigner::CheckedSigner(Bytes id, PublicKey public_key, crypto::EvpPkeyPtr key, Bytes spki, VerifyPolicy policy)
    : id_(std::move(id)), public_key_(std::move(public_key)), key_(std::move(key)), spki_(std::move(spki)), policy_(policy) {}

pkcs11::Result<std::shared_ptr<CheckedSigner>> CheckedSigner::make(Bytes id, PublicKey public_key, VerifyPolicy policy) {
  auto key = crypto::to_evp(public_key);
  if (!key) return pkcs11::Error::refused("the token's public key is unusable: " + key.error().what());
  // The hash of the checks and of ECDSA signatures, fetched now: an OpenSSL without it fails the start
  // (md_for throws), not a request.
  try {
    (void)crypto::md_for(public_key.algorithm);
  } catch (const std::exception& e) {
    return pkcs11::Error::refused(e.what());
  }
  auto spki = crypto::to_spki(key->get());
  if (!spki) return pkcs11::Error::refused("the token's public key is unusable: " + spki.error().what());
  return std::make_shared<CheckedSigner>(std::move(id), std::move(public_key), std::move(*key), std::move(*spki), policy);
}

std::optional<std::string> CheckedSigner::token_digest(std::string_view message) const {
  if (key_type(algorithm()) != KeyType::EC) return std::nullopt;
  const Bytes digest = crypto::digest_for(algorithm(), as_bytes(message));
  return std::string(digest.begin(), digest.end());
}

bool CheckedSigner::verify(ByteView message, ByteView signature) const {
  return crypto::verify(key_.get(), algorithm(), message, signature);
}

bool CheckedSigner::should_verify() {
  if (policy_ == VerifyPolicy::all || key_type(algorithm()) == KeyType::RSA) return true;
  return count_.fetch_add(1, std::memory_order_relaxed) % 32 == 0;
}

pkcs11::Result<Bytes> CheckedSigner::check(bool digest, DigestScheme scheme, std::string_view input,
                                           pkcs11::Result<Bytes> signature) {
  if (!signature) return signature;
  // Every signature has the length of its algorithm and key, checked or sampled.
  const std::size_t expected = key_type(algorithm()) == KeyType::RSA ? public_key_.modulus.size()
                               : key_type(algorithm()) == KeyType::EC ? 2 * ec_field_size(algorithm())
                                                                       : 64;
  if (signature->size() != expected) {
    faults.fetch_add(1, std::memory_order_relaxed);
    log::error("signature_fault", {{"algorithm", std::string(name(algorithm()))}, {"reason", "length"}});
    return pkcs11::Error::faulty_signature("C_Sign");
  }
  if (!should_verify()) return signature;
  const auto padding = scheme.padding == Padding::pss ? crypto::RsaPadding::pss : crypto::RsaPadding::pkcs1;
  const bool ok = digest ? crypto::verify_digest(key_.get(), algorithm(), crypto::sha2_md(hash_size(scheme.hash)), padding,
                                                 as_bytes(input), *signature)
                         : crypto::verify(key_.get(), algorithm(), as_bytes(input), *signature);
  if (ok) return signature;
  faults.fetch_add(1, std::memory_order_relaxed);
  log::error("signature_fault", {{"algorithm", std::string(name(algorithm()))}});
  return pkcs11::Error::faulty_signature("C_Sign");
}

}  // namespace hsmsignd::signing
