#include "crypto/verify.h"

#include <openssl/err.h>
#include <openssl/rsa.h>

#include <optional>

#include "crypto/digest.h"
#include "crypto/ecdsa_sig.h"
#include "crypto/evp_key.h"
#include "crypto/openssl_ptr.h"

namespace hsmsignd::crypto {
namespace {

constexpr std::size_t kEd25519SignatureSize = 64;

bool key_fits(EVP_PKEY* pkey, Algorithm algorithm) {
  if (pkey == nullptr) return false;
  switch (key_type(algorithm)) {
    case KeyType::EC:
      return EVP_PKEY_is_a(pkey, "EC") &&
             EVP_PKEY_get_bits(pkey) == static_cast<int>(8 * ec_field_size(algorithm));
    case KeyType::RSA: return EVP_PKEY_is_a(pkey, "RSA");
    case KeyType::OKP: return EVP_PKEY_is_a(pkey, "ED25519");
  }
  return false;
}

// The signature OpenSSL expects: DER for ECDSA, the JWS bytes unchanged otherwise. nullopt when the
// JWS signature cannot be well-formed for the algorithm.
std::optional<Bytes> to_openssl_signature(Algorithm algorithm, ByteView jws_signature) {
  switch (key_type(algorithm)) {
    case KeyType::EC: {
      auto der = ecdsa_raw_to_der(jws_signature, ec_field_size(algorithm));
      if (!der) return std::nullopt;
      return std::move(*der);
    }
    case KeyType::OKP:
      if (jws_signature.size() != kEd25519SignatureSize) return std::nullopt;
      break;
    case KeyType::RSA: break;  // OpenSSL checks the length against the modulus
  }
  return Bytes(jws_signature.begin(), jws_signature.end());
}

RsaPadding padding_of(Algorithm algorithm) { return algorithm == Algorithm::PS256 ? RsaPadding::pss : RsaPadding::pkcs1; }

// RFC 7518 §3.5 (and RFC 8017's recommendation): the PSS salt is as long as the hash output.
bool set_padding(EVP_PKEY_CTX* pctx, Algorithm algorithm, const EVP_MD* md, RsaPadding padding) {
  if (key_type(algorithm) != KeyType::RSA) return true;
  if (padding == RsaPadding::pkcs1) return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, EVP_MD_get_size(md)) == 1;
}

// A failed verification leaves reasons on the thread's OpenSSL error queue; they are expected here
// and must not be reported later as the cause of some unrelated failure.
bool settle(bool ok) {
  if (!ok) ERR_clear_error();
  return ok;
}

}  // namespace

bool verify(EVP_PKEY* pkey, Algorithm algorithm, ByteView message, ByteView jws_signature) {
  if (!key_fits(pkey, algorithm)) return settle(false);
  const auto signature = to_openssl_signature(algorithm, jws_signature);
  if (!signature) return false;

  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md_for(algorithm), nullptr, pkey) != 1 ||
      !set_padding(pctx, algorithm, md_for(algorithm), padding_of(algorithm)))
    return settle(false);
  return settle(EVP_DigestVerify(ctx.get(), signature->data(), signature->size(), message.data(), message.size()) == 1);
}

bool verify_digest(EVP_PKEY* pkey, Algorithm algorithm, ByteView digest, ByteView jws_signature) {
  return verify_digest(pkey, algorithm, md_for(algorithm), padding_of(algorithm), digest, jws_signature);
}

bool verify_digest(EVP_PKEY* pkey, Algorithm algorithm, const EVP_MD* md, RsaPadding padding, ByteView digest,
                   ByteView jws_signature) {
  if (algorithm == Algorithm::EdDSA || md == nullptr || digest.size() != static_cast<std::size_t>(EVP_MD_get_size(md)) ||
      !key_fits(pkey, algorithm))
    return settle(false);
  const auto signature = to_openssl_signature(algorithm, jws_signature);
  if (!signature) return false;

  EvpPkeyCtxPtr pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!pctx || EVP_PKEY_verify_init(pctx.get()) != 1 || EVP_PKEY_CTX_set_signature_md(pctx.get(), md) != 1 ||
      !set_padding(pctx.get(), algorithm, md, padding))
    return settle(false);
  return settle(EVP_PKEY_verify(pctx.get(), signature->data(), signature->size(), digest.data(), digest.size()) == 1);
}

bool verify(const PublicKey& key, ByteView message, ByteView jws_signature) {
  auto pkey = to_evp(key);
  return pkey && verify(pkey->get(), key.algorithm, message, jws_signature);
}

bool verify_digest(const PublicKey& key, ByteView digest, ByteView jws_signature) {
  auto pkey = to_evp(key);
  return pkey && verify_digest(pkey->get(), key.algorithm, digest, jws_signature);
}

}  // namespace hsmsignd::crypto
