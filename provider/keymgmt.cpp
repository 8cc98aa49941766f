// KEYMGMT for EC, RSA and RSA-PSS. A key of the daemon's (has_private) can sign through SIGNATURE below;
// every other question (size, group, default digest, the public key's encoding) is answered by its public
// half, which is another provider's key. Only public parts are ever exported or imported: an export that
// asks for the private key fails, which is also what makes OpenSSL choose this provider's SIGNATURE for
// these keys instead of another provider's.
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstring>

#include "dispatch.h"
#include "key.h"
#include "key_object.h"

namespace hsmsignd::provider {
namespace {

Key* as_key(void* keydata) { return static_cast<Key*>(keydata); }
const Key* as_key(const void* keydata) { return static_cast<const Key*>(keydata); }

void* key_new(void* provctx) noexcept {
  try {
    return std::make_unique<Key>(Key{&context_of(provctx), {}, {}, nullptr}).release();  // key_free frees it
  } catch (...) {
    return nullptr;
  }
}

void key_free(void* keydata) noexcept { std::unique_ptr<Key> owned(as_key(keydata)); }

// Each load of a reference from the STORE or the DECODER is a handle of its own.
void* key_load(const void* reference, size_t size) noexcept {
  const Key* key = key_from_reference(reference, size);
  if (key == nullptr) return nullptr;
  try {
    return copy_key(*key).release();
  } catch (...) {
    return nullptr;
  }
}

void* key_dup(const void* keydata, int /*selection*/) noexcept {
  try {
    return copy_key(*as_key(keydata)).release();
  } catch (...) {
    return nullptr;
  }
}

int key_has(const void* keydata, int selection) noexcept {
  const Key* key = as_key(keydata);
  if (key == nullptr || !key->public_key) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !key->has_private()) return 0;
  return 1;
}

int key_match(const void* a, const void* b, int /*selection*/) noexcept {
  const Key* x = as_key(a);
  const Key* y = as_key(b);
  // The public halves decide: two handles on the same token key, or a certificate's key and ours.
  return x != nullptr && y != nullptr && x->public_key && y->public_key &&
         EVP_PKEY_eq(x->public_key.get(), y->public_key.get()) == 1;
}

template <const char* Type>
int key_import(void* keydata, int selection, const OSSL_PARAM params[]) noexcept {
  Key* key = as_key(keydata);
  if (key == nullptr || key->has_private()) return 0;
  // A private key has no place here: it would have to be a software key, which the default provider serves.
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 &&
      (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != nullptr ||
       OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) != nullptr))
    return 0;
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(key->provider->libctx(), Type, kOthers));
  EVP_PKEY* imported = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &imported, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1)
    return 0;
  key->public_key.reset(imported);
  return 1;
}

constexpr OSSL_PARAM kEcPublicTypes[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_END};
constexpr OSSL_PARAM kRsaPublicTypes[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_END};

template <const char* Type>
const OSSL_PARAM* key_types(int selection) noexcept {
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return nullptr;
  return std::strcmp(Type, "EC") == 0 ? kEcPublicTypes : kRsaPublicTypes;
}

int key_export(void* keydata, int selection, OSSL_CALLBACK* callback, void* arg) noexcept {
  const Key* key = as_key(keydata);
  if (key == nullptr || !key->public_key || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return 0;
  return EVP_PKEY_export(key->public_key.get(), selection, callback, arg);
}

int key_get_params(void* keydata, OSSL_PARAM params[]) noexcept {
  const Key* key = as_key(keydata);
  if (key == nullptr || !key->public_key) return 0;
  return EVP_PKEY_get_params(key->public_key.get(), params);
}

// What another provider's key management of the same type answers; its tables are static, so they outlive
// the fetched method.
template <const char* Type>
const OSSL_PARAM* key_gettable_params(void* provctx) noexcept {
  EVP_KEYMGMT* other = EVP_KEYMGMT_fetch(context_of(provctx).libctx(), Type, kOthers);
  const OSSL_PARAM* params = other != nullptr ? EVP_KEYMGMT_gettable_params(other) : nullptr;
  EVP_KEYMGMT_free(other);
  return params;
}

template <const char* Type>
const char* key_operation_name(int operation) noexcept {
  if (operation != OSSL_OP_SIGNATURE) return nullptr;
  return std::strcmp(Type, "EC") == 0 ? "ECDSA" : "RSA";
}

template <const char* Type>
const OSSL_DISPATCH kKeymgmt[] = {
    {OSSL_FUNC_KEYMGMT_NEW, reinterpret_cast<void (*)()>(&key_new)},
    {OSSL_FUNC_KEYMGMT_FREE, reinterpret_cast<void (*)()>(&key_free)},
    {OSSL_FUNC_KEYMGMT_LOAD, reinterpret_cast<void (*)()>(&key_load)},
    {OSSL_FUNC_KEYMGMT_DUP, reinterpret_cast<void (*)()>(&key_dup)},
    {OSSL_FUNC_KEYMGMT_HAS, reinterpret_cast<void (*)()>(&key_has)},
    {OSSL_FUNC_KEYMGMT_MATCH, reinterpret_cast<void (*)()>(&key_match)},
    {OSSL_FUNC_KEYMGMT_IMPORT, reinterpret_cast<void (*)()>(&key_import<Type>)},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, reinterpret_cast<void (*)()>(&key_types<Type>)},
    {OSSL_FUNC_KEYMGMT_EXPORT, reinterpret_cast<void (*)()>(&key_export)},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, reinterpret_cast<void (*)()>(&key_types<Type>)},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, reinterpret_cast<void (*)()>(&key_get_params)},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(&key_gettable_params<Type>)},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, reinterpret_cast<void (*)()>(&key_operation_name<Type>)},
    {0, nullptr}};

constexpr char kEc[] = "EC";
constexpr char kRsa[] = "RSA";
constexpr char kRsaPss[] = "RSA-PSS";

}  // namespace

const OSSL_DISPATCH* ec_keymgmt() { return kKeymgmt<kEc>; }
const OSSL_DISPATCH* rsa_keymgmt() { return kKeymgmt<kRsa>; }
const OSSL_DISPATCH* rsa_pss_keymgmt() { return kKeymgmt<kRsaPss>; }

}  // namespace hsmsignd::provider
