#include "provider_context.h"

#include <openssl/crypto.h>
#include <openssl/params.h>

#include <cstdarg>
#include <cstdlib>

namespace hsmsignd::provider {
namespace {

// The section of openssl.cnf that activated the provider: `socket` (else $HSMSIGND_SOCKET, else the
// daemon's default) and `timeout_ms` (else the client's default).
client::Options options_from(const OSSL_CORE_HANDLE* handle, OSSL_FUNC_core_get_params_fn* get_params) {
  client::Options options;
  if (get_params == nullptr) return options;
  const char* socket = nullptr;
  const char* timeout = nullptr;
  OSSL_PARAM params[] = {OSSL_PARAM_utf8_ptr("socket", &socket, 0), OSSL_PARAM_utf8_ptr("timeout_ms", &timeout, 0),
                         OSSL_PARAM_END};
  if (get_params(handle, params) != 1) return options;
  if (socket != nullptr && *socket != '\0') options.socket = socket;
  if (timeout != nullptr) {
    char* end = nullptr;
    const long ms = std::strtol(timeout, &end, 10);
    if (end != timeout && *end == '\0' && ms > 0 && ms <= 600000) options.timeout = std::chrono::milliseconds(ms);
  }
  return options;
}

void set_error(OSSL_FUNC_core_vset_error_fn* vset, const OSSL_CORE_HANDLE* handle, int reason, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vset(handle, static_cast<uint32_t>(reason), fmt, args);
  va_end(args);
}

template <class Fn>
Fn* find(const OSSL_DISPATCH* in, int id) {
  for (; in != nullptr && in->function_id != 0; ++in)
    if (in->function_id == id) return reinterpret_cast<Fn*>(in->function);
  return nullptr;
}

}  // namespace

ProviderContext::ProviderContext(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in)
    : handle_(handle),
      client_(options_from(handle, find<OSSL_FUNC_core_get_params_fn>(in, OSSL_FUNC_CORE_GET_PARAMS))),
      new_error_(find<OSSL_FUNC_core_new_error_fn>(in, OSSL_FUNC_CORE_NEW_ERROR)),
      set_error_debug_(find<OSSL_FUNC_core_set_error_debug_fn>(in, OSSL_FUNC_CORE_SET_ERROR_DEBUG)),
      vset_error_(find<OSSL_FUNC_core_vset_error_fn>(in, OSSL_FUNC_CORE_VSET_ERROR)) {
  // A child of the application's library context sees the providers the application loaded (default,
  // fips, ...), so the provider's own fetches follow the application's configuration.
  libctx_ = OSSL_LIB_CTX_new_child(handle, in);
}

ProviderContext::~ProviderContext() { OSSL_LIB_CTX_free(libctx_); }

void ProviderContext::raise(Reason reason, std::string_view detail) const {
  if (new_error_ == nullptr || vset_error_ == nullptr) return;
  new_error_(handle_);
  if (set_error_debug_ != nullptr) set_error_debug_(handle_, nullptr, 0, nullptr);
  set_error(vset_error_, handle_, reason, "%.*s", static_cast<int>(detail.size()), detail.data());
}

void ProviderContext::raise(const client::Error& e) const {
  raise(e.kind == client::Error::Kind::refused ? kDaemonRefused : kDaemonUnreachable, e.what());
}

}  // namespace hsmsignd::provider
