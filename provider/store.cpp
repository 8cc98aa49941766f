// STORE for `hsmsignd:` URIs: `openssl req -key hsmsignd:keyset=tls`, OSSL_STORE_open() in a program.
// It loads one object, the key, as a reference for this provider's KEYMGMT.
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/store.h>

#include "dispatch.h"
#include "key.h"
#include "key_object.h"

namespace hsmsignd::provider {
namespace {

struct StoreContext {
  ProviderContext* provider;
  KeyUri uri;
  bool loaded = false;
};

void* store_open(void* provctx, const char* uri) noexcept {
  ProviderContext& provider = context_of(provctx);
  try {
    auto parsed = parse_uri(uri);
    if (!parsed) {
      provider.raise(kBadUri, std::string("not an hsmsignd key URI (hsmsignd:keyset=NAME or hsmsignd:kid=KID): ") + uri);
      return nullptr;
    }
    return std::make_unique<StoreContext>(StoreContext{&provider, std::move(*parsed)}).release();
  } catch (...) {
    return nullptr;
  }
}

const OSSL_PARAM* store_settable_ctx_params(void* /*provctx*/) noexcept {
  static const OSSL_PARAM params[] = {OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr), OSSL_PARAM_END};
  return params;
}

// What is expected (a key, a certificate) changes nothing: the URI names one key.
int store_set_ctx_params(void* /*ctx*/, const OSSL_PARAM /*params*/[]) noexcept { return 1; }

int store_load(void* ctx, OSSL_CALLBACK* object_cb, void* object_cbarg, OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/,
               void* /*pw_cbarg*/) noexcept {
  auto& store = *static_cast<StoreContext*>(ctx);
  if (store.loaded) return 0;
  store.loaded = true;
  try {
    auto key = load_key(*store.provider, store.uri);
    return key ? pass_key(*key, object_cb, object_cbarg) : 0;
  } catch (...) {
    return 0;
  }
}

int store_eof(void* ctx) noexcept { return static_cast<StoreContext*>(ctx)->loaded ? 1 : 0; }

int store_close(void* ctx) noexcept {
  std::unique_ptr<StoreContext> owned(static_cast<StoreContext*>(ctx));
  return 1;
}

// Asked when another provider's key management would take the key: refused, so OpenSSL uses this
// provider's, which is the only one that can sign with it.
int store_export_object(void*, const void*, size_t, OSSL_CALLBACK*, void*) noexcept { return 0; }

const OSSL_DISPATCH kStore[] = {
    {OSSL_FUNC_STORE_OPEN, reinterpret_cast<void (*)()>(&store_open)},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, reinterpret_cast<void (*)()>(&store_settable_ctx_params)},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, reinterpret_cast<void (*)()>(&store_set_ctx_params)},
    {OSSL_FUNC_STORE_LOAD, reinterpret_cast<void (*)()>(&store_load)},
    {OSSL_FUNC_STORE_EOF, reinterpret_cast<void (*)()>(&store_eof)},
    {OSSL_FUNC_STORE_CLOSE, reinterpret_cast<void (*)()>(&store_close)},
    {OSSL_FUNC_STORE_EXPORT_OBJECT, reinterpret_cast<void (*)()>(&store_export_object)},
    {0, nullptr}};

}  // namespace

const OSSL_DISPATCH* uri_store() { return kStore; }

}  // namespace hsmsignd::provider
