#include "crypto/evp_key.h"

#include <openssl/core_names.h>
#include <openssl/x509.h>

#include <bit>
#include <string>

namespace hsmsignd::crypto {
namespace {

const char* ec_group_name(Algorithm algorithm) {
  return algorithm == Algorithm::ES384 ? "secp384r1" : "prime256v1";
}

// Significant bits of a big-endian unsigned number, ignoring leading zero bytes.
std::size_t bit_length(ByteView be) {
  std::size_t i = 0;
  while (i < be.size() && be[i] == 0) ++i;
  if (i == be.size()) return 0;
  return (be.size() - i - 1) * 8 + static_cast<std::size_t>(std::bit_width(be[i]));
}

Expected<EvpPkeyPtr, CryptoError> from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1)
    return openssl_error(std::string(type) + " public key: set-up failed");

  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return openssl_error(std::string(type) + " public key refused");
  // For EC, fromdata already refuses a point that is not on the curve (and the point at infinity,
  // which has no uncompressed form). EVP_PKEY_public_check is deliberately not called: on these
  // prime-order curves it adds nothing, and for RSA it costs ~6 ms per key for checks that the cheap
  // ones in rsa_to_evp cover well enough for a key we only verify with.
  return EvpPkeyPtr(raw);
}

Expected<EvpPkeyPtr, CryptoError> ec_to_evp(const PublicKey& key) {
  const std::size_t expected = 1 + 2 * ec_field_size(key.algorithm);
  if (key.point.size() != expected || key.point[0] != 0x04)
    return CryptoError{"EC public key for " + std::string(name(key.algorithm)) + " must be the " +
                       std::to_string(expected) + "-byte uncompressed point 04||X||Y, got " +
                       std::to_string(key.point.size()) + " bytes"};

  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, ec_group_name(key.algorithm), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, key.point.data(), key.point.size()) != 1)
    return openssl_error("EC public key: OSSL_PARAM_BLD");
  return from_params("EC", bld.get());
}

Expected<EvpPkeyPtr, CryptoError> rsa_to_evp(const PublicKey& key) {
  const std::size_t bits = bit_length(key.modulus);
  if (bits < kMinRsaBits || bits > kMaxRsaBits)
    return CryptoError{"RSA modulus of " + std::to_string(bits) + " bits is outside [" + std::to_string(kMinRsaBits) +
                       ", " + std::to_string(kMaxRsaBits) + "]"};
  if ((key.modulus.back() & 1) == 0) return CryptoError{"RSA modulus is even"};
  const std::size_t e_bits = bit_length(key.exponent);
  if (e_bits < 2 || e_bits > 64 || (key.exponent.back() & 1) == 0)
    return CryptoError{"RSA public exponent must be odd, greater than 1 and at most 64 bits"};

  BignumPtr n(BN_bin2bn(key.modulus.data(), static_cast<int>(key.modulus.size()), nullptr));
  BignumPtr e(BN_bin2bn(key.exponent.data(), static_cast<int>(key.exponent.size()), nullptr));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!n || !e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
    return openssl_error("RSA public key: OSSL_PARAM_BLD");
  return from_params("RSA", bld.get());
}

Expected<EvpPkeyPtr, CryptoError> ed25519_to_evp(const PublicKey& key) {
  if (key.point.size() != 32)
    return CryptoError{"Ed25519 public key must be 32 bytes, got " + std::to_string(key.point.size())};
  EvpPkeyPtr pkey(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, key.point.data(), key.point.size()));
  if (!pkey) return openssl_error("Ed25519 public key refused");
  return pkey;
}

Expected<Bytes, CryptoError> bn_param(const EVP_PKEY* pkey, const char* param, int pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1) return openssl_error(std::string("reading ") + param);
  BignumPtr bn(raw);
  const int size = pad_to > 0 ? pad_to : BN_num_bytes(bn.get());
  Bytes out(static_cast<std::size_t>(size));
  if (BN_bn2binpad(bn.get(), out.data(), size) != size) return openssl_error(std::string("encoding ") + param);
  return out;
}

Expected<PublicKey, CryptoError> ec_from_evp(const EVP_PKEY* pkey, Algorithm algorithm) {
  char group[32] = {};
  if (!EVP_PKEY_is_a(pkey, "EC") ||
      EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, nullptr) != 1 ||
      std::string_view(group) != ec_group_name(algorithm))
    return CryptoError{"key is not an EC key on the curve of " + std::string(name(algorithm))};

  const int field = static_cast<int>(ec_field_size(algorithm));
  auto x = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, field);
  if (!x) return x.error();
  auto y = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, field);
  if (!y) return y.error();

  PublicKey key{algorithm, {0x04}, {}, {}};
  key.point.insert(key.point.end(), x->begin(), x->end());
  key.point.insert(key.point.end(), y->begin(), y->end());
  return key;
}

Expected<PublicKey, CryptoError> rsa_from_evp(const EVP_PKEY* pkey, Algorithm algorithm) {
  if (!EVP_PKEY_is_a(pkey, "RSA")) return CryptoError{"key is not an RSA key"};
  auto n = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0);
  if (!n) return n.error();
  auto e = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
  if (!e) return e.error();
  return PublicKey{algorithm, {}, std::move(*n), std::move(*e)};
}

Expected<PublicKey, CryptoError> ed25519_from_evp(const EVP_PKEY* pkey) {
  if (!EVP_PKEY_is_a(pkey, "ED25519")) return CryptoError{"key is not an Ed25519 key"};
  Bytes raw(32);
  std::size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, raw.data(), &len) != 1 || len != raw.size())
    return openssl_error("reading the Ed25519 public key");
  return PublicKey{Algorithm::EdDSA, std::move(raw), {}, {}};
}

}  // namespace

Expected<EvpPkeyPtr, CryptoError> to_evp(const PublicKey& key) {
  switch (key_type(key.algorithm)) {
    case KeyType::EC: return ec_to_evp(key);
    case KeyType::RSA: return rsa_to_evp(key);
    case KeyType::OKP: return ed25519_to_evp(key);
  }
  return CryptoError{"unknown key type"};
}

Expected<PublicKey, CryptoError> from_evp(const EVP_PKEY* pkey, Algorithm algorithm) {
  if (pkey == nullptr) return CryptoError{"no key"};
  switch (key_type(algorithm)) {
    case KeyType::EC: return ec_from_evp(pkey, algorithm);
    case KeyType::RSA: return rsa_from_evp(pkey, algorithm);
    case KeyType::OKP: return ed25519_from_evp(pkey);
  }
  return CryptoError{"unknown key type"};
}

Expected<Bytes, CryptoError> to_spki(EVP_PKEY* pkey) {
  const int size = i2d_PUBKEY(pkey, nullptr);
  if (size <= 0) return openssl_error("i2d_PUBKEY");
  Bytes out(static_cast<std::size_t>(size));
  unsigned char* p = out.data();
  if (i2d_PUBKEY(pkey, &p) != size) return openssl_error("i2d_PUBKEY");
  return out;
}

}  // namespace hsmsignd::crypto
