#include "software_keys.h"

#include <openssl/rsa.h>

#include <array>
#include <stdexcept>

#include "crypto/ecdsa_sig.h"
#include "crypto/evp_key.h"

namespace hsmsignd::test {

crypto::EvpPkeyPtr generate_key(Algorithm algorithm) {
  EVP_PKEY* key = nullptr;
  switch (algorithm) {
    case Algorithm::ES256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case Algorithm::ES384: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case Algorithm::RS256:
    case Algorithm::PS256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}); break;
    case Algorithm::EdDSA: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
  }
  if (key == nullptr) throw std::runtime_error("EVP_PKEY_Q_keygen failed");
  return crypto::EvpPkeyPtr(key);
}

EVP_PKEY* shared_key(Algorithm algorithm) {
  // Indexed by algorithm; RS256 and PS256 share one RSA key.
  static std::array<crypto::EvpPkeyPtr, 5> keys;
  const auto slot = static_cast<std::size_t>(algorithm == Algorithm::PS256 ? Algorithm::RS256 : algorithm);
  if (!keys[slot]) keys[slot] = generate_key(algorithm);
  return keys[slot].get();
}

PublicKey shared_public_key(Algorithm algorithm) {
  return crypto::from_evp(shared_key(algorithm), algorithm).value();
}

Bytes sign(EVP_PKEY* key, Algorithm algorithm, ByteView message) {
  const char* md = nullptr;
  if (algorithm == Algorithm::ES384) md = "SHA384";
  else if (algorithm != Algorithm::EdDSA) md = "SHA256";

  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit_ex(ctx.get(), &pctx, md, nullptr, nullptr, key, nullptr) != 1)
    throw std::runtime_error("EVP_DigestSignInit_ex failed");
  if (algorithm == Algorithm::PS256 &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", nullptr) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
    throw std::runtime_error("PSS parameters refused");

  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1)
    throw std::runtime_error("EVP_DigestSign (size) failed");
  Bytes signature(len);
  if (EVP_DigestSign(ctx.get(), signature.data(), &len, message.data(), message.size()) != 1)
    throw std::runtime_error("EVP_DigestSign failed");
  signature.resize(len);

  if (key_type(algorithm) == KeyType::EC)
    return crypto::ecdsa_der_to_raw(signature, ec_field_size(algorithm)).value();
  return signature;
}

}  // namespace hsmsignd::test
