#include "sign.h"

#include <openssl/evp.h>

#include <array>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {
namespace {

// DER of DigestInfo (RFC 8017 §9.2, note 1) up to the digest: CKM_RSA_PKCS signs it with the digest appended.
constexpr std::array<CK_BYTE, 19> kSha256DigestInfo{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
constexpr std::array<CK_BYTE, 19> kSha384DigestInfo{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
constexpr std::array<CK_BYTE, 19> kSha512DigestInfo{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};
// A signature this long is wrong for every key hsmsignd makes; it bounds the buffer the token fills.
constexpr CK_ULONG kMaxSignature = 1024;

Result<Bytes> token_sign(SessionRef s, CK_OBJECT_HANDLE key, CK_MECHANISM mechanism, ByteView input,
                         std::size_t expected) {
  if (auto ok = P11_CALL(*s.module, C_SignInit, s.handle, &mechanism, key); !ok) return ok.error();
  auto* data = const_cast<CK_BYTE*>(input.data());
  Bytes signature(kMaxSignature);
  CK_ULONG length = 0;
  // Asking for the length first keeps a lying token from making us read or write past a buffer.
  if (auto ok = P11_CALL(*s.module, C_Sign, s.handle, data, input.size(), nullptr, &length); !ok)
    return ok.error();
  if (length > kMaxSignature)  // the operation stays active: the session has to be replaced
    return Error::token("C_Sign", CKR_OPERATION_ACTIVE, "the token wants " + std::to_string(length) + " bytes");
  CK_ULONG written = length;
  if (auto ok = P11_CALL(*s.module, C_Sign, s.handle, data, input.size(), signature.data(), &written); !ok)
    return ok.error();
  if (written != expected)
    return Error::refused("the token returned a " + std::to_string(written) + "-byte signature, expected " +
                          std::to_string(expected));
  signature.resize(written);
  return signature;
}

Result<Bytes> hash(Algorithm algorithm, ByteView message) {
  const EVP_MD* md = algorithm == Algorithm::ES384 ? EVP_sha384() : EVP_sha256();
  Bytes digest(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  if (EVP_Digest(message.data(), message.size(), digest.data(), &length, md, nullptr) != 1)
    return Error::refused("OpenSSL could not hash the message");
  digest.resize(length);
  return digest;
}

const std::array<CK_BYTE, 19>& digest_info(Hash h) {
  return h == Hash::sha512 ? kSha512DigestInfo : h == Hash::sha384 ? kSha384DigestInfo : kSha256DigestInfo;
}

// RFC 8017's recommendation, and what TLS 1.3 and RFC 4055 require: MGF1 with the message's hash, and a
// salt as long as the digest.
CK_RSA_PKCS_PSS_PARAMS pss_params(Hash h) {
  switch (h) {
    case Hash::sha384: return {CKM_SHA384, CKG_MGF1_SHA384, 48};
    case Hash::sha512: return {CKM_SHA512, CKG_MGF1_SHA512, 64};
    case Hash::sha256: break;
  }
  return {CKM_SHA256, CKG_MGF1_SHA256, 32};
}

}  // namespace

Result<SigningKey> signing_key(const KeyObject& key, Algorithm algorithm, const SigningRules& rules) {
  if (!rules.custody.trustworthy(key.custody))
    return Error::refused(rules.custody.require_local
                              ? "key custody check failed: a signing key must be local, never extractable, "
                                "always sensitive, sensitive and not extractable"
                              : "key custody check failed: a signing key must be never extractable, "
                                "always sensitive, sensitive and not extractable");
  if (!fits(key, algorithm))
    return Error::refused("the key does not fit " + std::string(name(algorithm)));
  std::size_t size = key.type == KeyType::RSA ? key.bits / 8 : key.type == KeyType::OKP ? 64 : 2 * ec_field_size(algorithm);
  return SigningKey{key.id, key.private_key, algorithm, size, rules.plan.of(algorithm)};
}

Result<Bytes> sign(SessionRef s, const SigningKey& key, ByteView message) {
  switch (key.algorithm) {
    case Algorithm::ES256:
    case Algorithm::ES384: {
      auto digest = hash(key.algorithm, message);
      if (!digest) return digest.error();
      return token_sign(s, key.handle, {CKM_ECDSA, nullptr, 0}, *digest, key.signature_size);
    }
    case Algorithm::RS256:
    case Algorithm::PS256: {
      if (key.hashing == Hashing::here) {  // the token lacks the hash-and-sign mechanism (token_rules.cpp)
        auto digest = hash(key.algorithm, message);
        if (!digest) return digest.error();
        return sign_digest(s, key, *digest, default_scheme(key.algorithm));
      }
      if (key.algorithm == Algorithm::RS256)
        return token_sign(s, key.handle, {CKM_SHA256_RSA_PKCS, nullptr, 0}, message, key.signature_size);
      auto params = pss_params(Hash::sha256);
      return token_sign(s, key.handle, {CKM_SHA256_RSA_PKCS_PSS, &params, sizeof(params)}, message,
                        key.signature_size);
    }
    case Algorithm::EdDSA:
      return token_sign(s, key.handle, {CKM_EDDSA, nullptr, 0}, message, key.signature_size);
  }
  return Error::refused("unknown algorithm");
}

Result<Bytes> sign_digest(SessionRef s, const SigningKey& key, ByteView digest, DigestScheme scheme) {
  if (key.algorithm == Algorithm::EdDSA) return Error::refused("EdDSA signs whole messages, not digests");
  if (!scheme_fits(key.algorithm, scheme))
    return Error::refused("a " + std::string(name(key.algorithm)) + " key cannot sign with padding " +
                          std::string(name(scheme.padding)));
  if (digest.size() != hash_size(scheme.hash))
    return Error::refused("a " + std::string(name(scheme.hash)) + " digest is " + std::to_string(hash_size(scheme.hash)) +
                          " bytes, not " + std::to_string(digest.size()));
  switch (scheme.padding) {
    case Padding::pkcs1: {
      const auto& prefix = digest_info(scheme.hash);
      Bytes info(prefix.begin(), prefix.end());
      info.insert(info.end(), digest.begin(), digest.end());
      return token_sign(s, key.handle, {CKM_RSA_PKCS, nullptr, 0}, info, key.signature_size);
    }
    case Padding::pss: {
      auto params = pss_params(scheme.hash);
      return token_sign(s, key.handle, {CKM_RSA_PKCS_PSS, &params, sizeof(params)}, digest, key.signature_size);
    }
    case Padding::none: break;
  }
  return token_sign(s, key.handle, {CKM_ECDSA, nullptr, 0}, digest, key.signature_size);
}

Signer::Signer(SessionPool& pool, SigningKey key, PublicKey public_key, const SigningRules& rules)
    : pool_(pool),
      id_(std::move(key.id)),
      algorithm_(key.algorithm),
      signature_size_(key.signature_size),
      rules_(rules),
      public_key_(std::move(public_key)),
      handle_(key.handle),
      handle_generation_(pool.generation()) {}

Result<std::shared_ptr<Signer>> Signer::open(SessionPool& pool, ByteView id, Algorithm algorithm,
                                             const SigningRules& rules) {
  return pool.run([&](SessionRef s) -> Result<std::shared_ptr<Signer>> {
    auto found = find_key(s, id);
    if (!found) return found.error();
    if (!*found) return Error::not_found("no private key with that CKA_ID");
    return open(pool, s, **found, algorithm, rules);
  });
}

Result<std::shared_ptr<Signer>> Signer::open(SessionPool& pool, SessionRef session, const KeyObject& object,
                                             Algorithm algorithm, const SigningRules& rules) {
  auto key = signing_key(object, algorithm, rules);
  if (!key) return key.error();
  auto pub = export_public_key(session, object, algorithm);
  if (!pub) return pub.error();
  return std::make_shared<Signer>(pool, std::move(*key), std::move(*pub), rules);
}

Result<SigningKey> Signer::reload(SessionRef s) {
  auto found = find_key(s, id_);
  if (!found) return found.error();
  if (!*found) return Error::not_found("the signing key is no longer on the token");
  auto key = signing_key(**found, algorithm_, rules_);
  if (!key) return key.error();
  handle_.store(key->handle);
  // Safe without a lock: no lease, so no re-initialisation, spans this call; a concurrent reload in the
  // same generation stores an equally good handle.
  handle_generation_.store(pool_.generation());
  return key;
}

template <class F>
Result<Bytes> Signer::with_key(F&& fn) {
  return pool_.run([&](SessionRef s) -> Result<Bytes> {
    // After a re-initialisation the cached handle may name another object: never sign with it.
    if (handle_generation_.load() == pool_.generation()) {
      auto result = fn(s, SigningKey{{}, handle_.load(), algorithm_, signature_size_, rules_.plan.of(algorithm_)});
      if (result || !result.error().handle_stale()) return result;
    }
    auto fresh = reload(s);
    if (!fresh) return fresh.error();
    return fn(s, *fresh);
  });
}

Result<Bytes> Signer::sign(ByteView message) {
  return with_key([&](SessionRef s, const SigningKey& key) { return pkcs11::sign(s, key, message); });
}

Result<Bytes> Signer::sign_digest(ByteView digest, DigestScheme scheme) {
  return with_key([&](SessionRef s, const SigningKey& key) { return pkcs11::sign_digest(s, key, digest, scheme); });
}

}  // namespace hsmsignd::pkcs11
