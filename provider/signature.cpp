// SIGNATURE for ECDSA and RSA (PKCS #1 v1.5 and PSS) with the daemon's keys. The data is hashed here, with
// another provider's digest; the daemon signs the digest in the token (POST /v1/sign) and the provider
// returns it in OpenSSL's form (DER for ECDSA). Every parameter (digest, padding, salt length, MGF1, the
// AlgorithmIdentifier a certificate needs) is kept by a shadow: another provider's verification context on
// the key's public half, set up exactly as this one. So its rules are OpenSSL's own, and verification
// through this provider is that context's work.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "crypto/ecdsa_sig.h"
#include "dispatch.h"
#include "key.h"

namespace hsmsignd::provider {
namespace {

struct SignatureContext {
  ProviderContext* provider = nullptr;
  const Key* key = nullptr;        // OpenSSL keeps the key alive while an operation uses it
  crypto::EvpPkeyCtxPtr shadow;    // EVP_PKEY_sign and _verify: the digest is given
  crypto::EvpMdCtxPtr shadow_md;   // EVP_DigestSign and _Verify: owns its EVP_PKEY_CTX
  crypto::EvpMdCtxPtr hasher;      // EVP_DigestSign: the data's hash, for the daemon

  EVP_PKEY_CTX* params() const { return shadow ? shadow.get() : EVP_MD_CTX_get_pkey_ctx(shadow_md.get()); }
};

SignatureContext* as_ctx(void* ctx) { return static_cast<SignatureContext*>(ctx); }

bool is_rsa(const Key& key) { return !EVP_PKEY_is_a(key.public_key.get(), "EC"); }

std::string utf8_param(EVP_PKEY_CTX* ctx, const char* name) {
  char value[64] = {};
  OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(name, value, sizeof value), OSSL_PARAM_END};
  if (ctx == nullptr || EVP_PKEY_CTX_get_params(ctx, params) != 1 || !OSSL_PARAM_modified(params)) return {};
  return value;
}

std::optional<int> int_param(EVP_PKEY_CTX* ctx, const char* name) {
  int value = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_int(name, &value), OSSL_PARAM_END};
  if (ctx == nullptr || EVP_PKEY_CTX_get_params(ctx, params) != 1 || !OSSL_PARAM_modified(params)) return std::nullopt;
  return value;
}

std::optional<client::Hash> hash_named(OSSL_LIB_CTX* libctx, const std::string& name) {
  if (name.empty()) return std::nullopt;
  crypto::EvpMdPtr md(EVP_MD_fetch(libctx, name.c_str(), kOthers));
  if (!md) return std::nullopt;
  if (EVP_MD_is_a(md.get(), "SHA2-256")) return client::Hash::sha256;
  if (EVP_MD_is_a(md.get(), "SHA2-384")) return client::Hash::sha384;
  if (EVP_MD_is_a(md.get(), "SHA2-512")) return client::Hash::sha512;
  return std::nullopt;
}

// PSS as OpenSSL leaves it unset ("auto") would be the longest salt, which the AlgorithmIdentifier of a
// certificate would then announce; the daemon signs with a salt as long as the digest (what TLS 1.3
// requires), so that is made the default here, before anyone reads the AlgorithmIdentifier.
void default_pss_salt(EVP_PKEY_CTX* ctx) {
  if (int_param(ctx, OSSL_SIGNATURE_PARAM_PAD_MODE) != RSA_PKCS1_PSS_PADDING) return;
  if (int_param(ctx, OSSL_SIGNATURE_PARAM_PSS_SALTLEN) != RSA_PSS_SALTLEN_AUTO) return;
  char digest[] = OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, digest, 0),
                         OSSL_PARAM_END};
  EVP_PKEY_CTX_set_params(ctx, params);
}

// What the daemon is asked for, from the shadow's parameters; nullopt (with the reason raised) for what
// it cannot sign.
std::optional<client::SignRequest> request_for(const SignatureContext& c, std::optional<client::Hash> hash,
                                               ByteView digest) {
  ProviderContext& p = *c.provider;
  if (!hash || client::digest_size(*hash) != digest.size()) {
    p.raise(kUnsupported, "hsmsignd signs SHA-256, SHA-384 and SHA-512 digests only (got " +
                              std::to_string(digest.size()) + " bytes)");
    return std::nullopt;
  }
  client::SignRequest request{Bytes(digest.begin(), digest.end()), {}, c.key->kid, hash, std::nullopt};
  if (!is_rsa(*c.key)) return request;
  const int padding = int_param(c.params(), OSSL_SIGNATURE_PARAM_PAD_MODE).value_or(RSA_PKCS1_PADDING);
  if (padding == RSA_PKCS1_PADDING) {
    request.padding = client::Padding::pkcs1;
    return request;
  }
  if (padding != RSA_PKCS1_PSS_PADDING) {
    p.raise(kUnsupported, "hsmsignd signs RSA with PKCS #1 v1.5 or PSS padding only");
    return std::nullopt;
  }
  const int salt = int_param(c.params(), OSSL_SIGNATURE_PARAM_PSS_SALTLEN).value_or(RSA_PSS_SALTLEN_DIGEST);
  const auto mgf1 = hash_named(p.libctx(), utf8_param(c.params(), OSSL_SIGNATURE_PARAM_MGF1_DIGEST));
  if ((salt != RSA_PSS_SALTLEN_DIGEST && salt != static_cast<int>(digest.size())) || (mgf1 && *mgf1 != *hash)) {
    p.raise(kUnsupported, "hsmsignd signs PSS with MGF1 of the same hash and a salt as long as the digest");
    return std::nullopt;
  }
  request.padding = client::Padding::pss;
  return request;
}

// Asks the daemon, and writes the signature in OpenSSL's form into `out`.
int sign_digest(const SignatureContext& c, std::optional<client::Hash> hash, ByteView digest, unsigned char* out,
                size_t* outlen, size_t outsize) {
  auto request = request_for(c, hash, digest);
  if (!request) return 0;
  auto answer = c.provider->client().sign(*request);
  if (!answer) {
    c.provider->raise(answer.error());
    return 0;
  }
  Bytes signature = std::move(answer->signature);
  if (!is_rsa(*c.key)) {
    const auto field = static_cast<std::size_t>(EVP_PKEY_get_bits(c.key->public_key.get()) + 7) / 8;
    auto der = crypto::ecdsa_raw_to_der(signature, field);
    if (!der) {
      c.provider->raise(kDaemonRefused, "the daemon's ECDSA signature is malformed: " + der.error().what());
      return 0;
    }
    signature = std::move(*der);
  }
  if (signature.size() > outsize) {
    c.provider->raise(kInternal, "the signature does not fit the caller's buffer");
    return 0;
  }
  std::memcpy(out, signature.data(), signature.size());
  *outlen = signature.size();
  return 1;
}

void* sig_newctx(void* provctx, const char* /*propq*/) noexcept {
  try {
    return std::make_unique<SignatureContext>(SignatureContext{&context_of(provctx), nullptr, {}, {}, {}}).release();
  } catch (...) {
    return nullptr;
  }
}

void sig_freectx(void* ctx) noexcept { std::unique_ptr<SignatureContext> owned(as_ctx(ctx)); }

void* sig_dupctx(void* ctx) noexcept {
  const SignatureContext* from = as_ctx(ctx);
  try {
    auto copy = std::make_unique<SignatureContext>(SignatureContext{from->provider, from->key, {}, {}, {}});
    if (from->shadow && !(copy->shadow = crypto::EvpPkeyCtxPtr(EVP_PKEY_CTX_dup(from->shadow.get())))) return nullptr;
    for (auto [src, dst] : {std::pair{&from->shadow_md, &copy->shadow_md}, std::pair{&from->hasher, &copy->hasher}}) {
      if (!*src) continue;
      dst->reset(EVP_MD_CTX_new());
      if (!*dst || EVP_MD_CTX_copy_ex(dst->get(), src->get()) != 1) return nullptr;
    }
    return copy.release();
  } catch (...) {
    return nullptr;
  }
}

// Binds the context to `keydata` (nullptr: the key it had) for signing or verifying.
bool bind_key(SignatureContext& c, void* keydata, bool signing) {
  if (keydata != nullptr) c.key = static_cast<const Key*>(keydata);
  if (c.key == nullptr || !c.key->public_key) return false;
  if (signing && !c.key->has_private()) {
    c.provider->raise(kUnsupported, "this key has no private half in the daemon");
    return false;
  }
  c.shadow.reset();
  c.shadow_md.reset();
  c.hasher.reset();
  return true;
}

int init(void* ctx, void* keydata, const OSSL_PARAM params[], bool signing) noexcept {
  SignatureContext& c = *as_ctx(ctx);
  if (!bind_key(c, keydata, signing)) return 0;
  c.shadow.reset(EVP_PKEY_CTX_new_from_pkey(c.provider->libctx(), c.key->public_key.get(), kOthers));
  if (!c.shadow || EVP_PKEY_verify_init_ex(c.shadow.get(), params) != 1) return 0;
  default_pss_salt(c.shadow.get());
  return 1;
}

int sig_sign_init(void* ctx, void* keydata, const OSSL_PARAM params[]) noexcept { return init(ctx, keydata, params, true); }
int sig_verify_init(void* ctx, void* keydata, const OSSL_PARAM params[]) noexcept {
  return init(ctx, keydata, params, false);
}

int sig_sign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize, const unsigned char* tbs,
             size_t tbslen) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  if (c.key == nullptr) return 0;
  if (sig == nullptr) {
    *siglen = static_cast<size_t>(EVP_PKEY_get_size(c.key->public_key.get()));
    return 1;
  }
  try {
    // With no digest set, an ECDSA digest is known by its length; RSA must be told (PKCS #1 v1.5 encodes it).
    auto hash = hash_named(c.provider->libctx(), utf8_param(c.params(), OSSL_SIGNATURE_PARAM_DIGEST));
    if (!hash && !is_rsa(*c.key)) {
      for (auto h : {client::Hash::sha256, client::Hash::sha384, client::Hash::sha512})
        if (client::digest_size(h) == tbslen) hash = h;
    }
    if (!hash && is_rsa(*c.key)) {
      c.provider->raise(kUnsupported, "an RSA signature of a digest needs its digest named (-pkeyopt digest:sha256)");
      return 0;
    }
    return sign_digest(c, hash, ByteView(tbs, tbslen), sig, siglen, sigsize);
  } catch (...) {
    return 0;
  }
}

int sig_verify(void* ctx, const unsigned char* sig, size_t siglen, const unsigned char* tbs, size_t tbslen) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  return c.shadow ? EVP_PKEY_verify(c.shadow.get(), sig, siglen, tbs, tbslen) : 0;
}

int digest_init(void* ctx, const char* mdname, void* keydata, const OSSL_PARAM params[], bool signing) noexcept {
  SignatureContext& c = *as_ctx(ctx);
  if (!bind_key(c, keydata, signing)) return 0;
  const char* md = mdname != nullptr ? mdname : "SHA256";
  c.shadow_md.reset(EVP_MD_CTX_new());
  if (!c.shadow_md || EVP_DigestVerifyInit_ex(c.shadow_md.get(), nullptr, md, c.provider->libctx(), kOthers,
                                              c.key->public_key.get(), params) != 1)
    return 0;
  default_pss_salt(c.params());
  if (!signing) return 1;
  crypto::EvpMdPtr digest(EVP_MD_fetch(c.provider->libctx(), md, kOthers));
  c.hasher.reset(EVP_MD_CTX_new());
  return digest && c.hasher && EVP_DigestInit_ex2(c.hasher.get(), digest.get(), nullptr) == 1;
}

int sig_digest_sign_init(void* ctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) noexcept {
  return digest_init(ctx, mdname, keydata, params, true);
}

int sig_digest_verify_init(void* ctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) noexcept {
  return digest_init(ctx, mdname, keydata, params, false);
}

int sig_digest_sign_update(void* ctx, const unsigned char* data, size_t len) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  return c.hasher ? EVP_DigestUpdate(c.hasher.get(), data, len) : 0;
}

int sig_digest_sign_final(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  if (!c.hasher) return 0;
  if (sig == nullptr) {
    *siglen = static_cast<size_t>(EVP_PKEY_get_size(c.key->public_key.get()));
    return 1;
  }
  try {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(c.hasher.get(), digest, &length) != 1) return 0;
    const EVP_MD* md = EVP_MD_CTX_get0_md(c.hasher.get());
    return sign_digest(c, hash_named(c.provider->libctx(), EVP_MD_get0_name(md)), ByteView(digest, length), sig,
                       siglen, sigsize);
  } catch (...) {
    return 0;
  }
}

int sig_digest_verify_update(void* ctx, const unsigned char* data, size_t len) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  return c.shadow_md ? EVP_DigestVerifyUpdate(c.shadow_md.get(), data, len) : 0;
}

int sig_digest_verify_final(void* ctx, const unsigned char* sig, size_t siglen) noexcept {
  const SignatureContext& c = *as_ctx(ctx);
  return c.shadow_md ? EVP_DigestVerifyFinal(c.shadow_md.get(), sig, siglen) : 0;
}

int sig_get_ctx_params(void* ctx, OSSL_PARAM params[]) noexcept {
  EVP_PKEY_CTX* shadow = as_ctx(ctx)->params();
  return shadow != nullptr && EVP_PKEY_CTX_get_params(shadow, params) == 1;
}

int sig_set_ctx_params(void* ctx, const OSSL_PARAM params[]) noexcept {
  EVP_PKEY_CTX* shadow = as_ctx(ctx)->params();
  if (shadow == nullptr) return params == nullptr || params[0].key == nullptr;
  if (EVP_PKEY_CTX_set_params(shadow, params) != 1) return 0;
  default_pss_salt(shadow);
  return 1;
}

// The other provider's tables for the same algorithm: they are static, so they outlive the fetched method.
template <const char* Algorithm, const OSSL_PARAM* (*Table)(const EVP_SIGNATURE*)>
const OSSL_PARAM* sig_params_table(void* /*ctx*/, void* provctx) noexcept {
  EVP_SIGNATURE* other = EVP_SIGNATURE_fetch(context_of(provctx).libctx(), Algorithm, kOthers);
  const OSSL_PARAM* params = other != nullptr ? Table(other) : nullptr;
  EVP_SIGNATURE_free(other);
  return params;
}

template <const char* Algorithm>
const OSSL_DISPATCH kSignature[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, reinterpret_cast<void (*)()>(&sig_newctx)},
    {OSSL_FUNC_SIGNATURE_FREECTX, reinterpret_cast<void (*)()>(&sig_freectx)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, reinterpret_cast<void (*)()>(&sig_dupctx)},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, reinterpret_cast<void (*)()>(&sig_sign_init)},
    {OSSL_FUNC_SIGNATURE_SIGN, reinterpret_cast<void (*)()>(&sig_sign)},
    {OSSL_FUNC_SIGNATURE_VERIFY_INIT, reinterpret_cast<void (*)()>(&sig_verify_init)},
    {OSSL_FUNC_SIGNATURE_VERIFY, reinterpret_cast<void (*)()>(&sig_verify)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, reinterpret_cast<void (*)()>(&sig_digest_sign_init)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, reinterpret_cast<void (*)()>(&sig_digest_sign_update)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, reinterpret_cast<void (*)()>(&sig_digest_sign_final)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, reinterpret_cast<void (*)()>(&sig_digest_verify_init)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, reinterpret_cast<void (*)()>(&sig_digest_verify_update)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, reinterpret_cast<void (*)()>(&sig_digest_verify_final)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, reinterpret_cast<void (*)()>(&sig_get_ctx_params)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     reinterpret_cast<void (*)()>(&sig_params_table<Algorithm, &EVP_SIGNATURE_gettable_ctx_params>)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, reinterpret_cast<void (*)()>(&sig_set_ctx_params)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     reinterpret_cast<void (*)()>(&sig_params_table<Algorithm, &EVP_SIGNATURE_settable_ctx_params>)},
    {0, nullptr}};

constexpr char kEcdsa[] = "ECDSA";
constexpr char kRsa[] = "RSA";

}  // namespace

const OSSL_DISPATCH* ecdsa_signature() { return kSignature<kEcdsa>; }
const OSSL_DISPATCH* rsa_signature() { return kSignature<kRsa>; }

}  // namespace hsmsignd::provider
