// OSSL_provider_init, the only symbol hsmsignd.so exports, and the table of what the provider offers.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <memory>

#include "dispatch.h"
#include "provider_context.h"

namespace hsmsignd::provider {
namespace {

constexpr const char* kEcNames = "EC:id-ecPublicKey:1.2.840.10045.2.1";
constexpr const char* kRsaNames = "RSA:rsaEncryption:1.2.840.113549.1.1.1";
constexpr const char* kRsaPssNames = "RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10";
constexpr const char* kUriDecoderProperties = "provider=hsmsignd,input=der,structure=hsmsignd-uri";

const OSSL_ALGORITHM kKeymgmt[] = {{kEcNames, kProperties, ec_keymgmt(), "hsmsignd EC keys"},
                                   {kRsaNames, kProperties, rsa_keymgmt(), "hsmsignd RSA keys"},
                                   {kRsaPssNames, kProperties, rsa_pss_keymgmt(), "RSA-PSS public keys"},
                                   {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignature[] = {{"ECDSA", kProperties, ecdsa_signature(), "ECDSA in the token"},
                                     {kRsaNames, kProperties, rsa_signature(), "RSA in the token"},
                                     {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kStore[] = {{"hsmsignd", kProperties, uri_store(), "hsmsignd: key URIs"},
                                 {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kDecoder[] = {{"DER", "provider=hsmsignd,input=pem", pem_uri_decoder(), "PEM-wrapped key URI"},
                                   {kEcNames, kUriDecoderProperties, ec_uri_decoder(), "EC key URI"},
                                   {kRsaNames, kUriDecoderProperties, rsa_uri_decoder(), "RSA key URI"},
                                   {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* query_operation(void* /*provctx*/, int operation, int* no_cache) noexcept {
  *no_cache = 0;
  switch (operation) {
    case OSSL_OP_KEYMGMT: return kKeymgmt;
    case OSSL_OP_SIGNATURE: return kSignature;
    case OSSL_OP_STORE: return kStore;
    case OSSL_OP_DECODER: return kDecoder;
    default: return nullptr;
  }
}

const OSSL_PARAM* gettable_params(void* /*provctx*/) noexcept {
  static const OSSL_PARAM params[] = {OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
                                      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, nullptr, 0),
                                      OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr), OSSL_PARAM_END};
  return params;
}

int get_params(void* /*provctx*/, OSSL_PARAM params[]) noexcept {
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME); p && !OSSL_PARAM_set_utf8_ptr(p, "hsmsignd"))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION); p && !OSSL_PARAM_set_utf8_ptr(p, HSMSIGND_VERSION))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS); p && !OSSL_PARAM_set_int(p, 1)) return 0;
  return 1;
}

const OSSL_ITEM* reason_strings(void* /*provctx*/) noexcept {
  static const OSSL_ITEM reasons[] = {{kDaemonRefused, const_cast<char*>("the hsmsignd daemon refused")},
                                      {kDaemonUnreachable, const_cast<char*>("the hsmsignd daemon did not answer")},
                                      {kBadUri, const_cast<char*>("bad hsmsignd key URI")},
                                      {kKeyNotFound, const_cast<char*>("no such hsmsignd key")},
                                      {kUnsupported, const_cast<char*>("not supported by hsmsignd")},
                                      {kInternal, const_cast<char*>("hsmsignd provider internal error")},
                                      {0, nullptr}};
  return reasons;
}

void teardown(void* provctx) noexcept { std::unique_ptr<ProviderContext> owned(&context_of(provctx)); }

const OSSL_DISPATCH kProvider[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, reinterpret_cast<void (*)()>(&teardown)},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(&gettable_params)},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, reinterpret_cast<void (*)()>(&get_params)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, reinterpret_cast<void (*)()>(&query_operation)},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, reinterpret_cast<void (*)()>(&reason_strings)},
    {0, nullptr}};

}  // namespace
}  // namespace hsmsignd::provider

extern "C" __attribute__((visibility("default"))) int OSSL_provider_init(const OSSL_CORE_HANDLE* handle,
                                                                         const OSSL_DISPATCH* in,
                                                                         const OSSL_DISPATCH** out,
                                                                         void** provctx) {
  using hsmsignd::provider::ProviderContext;
  try {
    auto context = std::make_unique<ProviderContext>(handle, in);
    if (!context->ok()) return 0;
    *out = hsmsignd::provider::kProvider;
    *provctx = context.release();
    return 1;
  } catch (...) {
    return 0;
  }
}
