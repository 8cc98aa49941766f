// What every part of the provider shares: the library context it fetches in, the daemon client, and the
// way errors reach the application's error queue.
#pragma once

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <string>
#include <string_view>

#include "hsmsignd/client.h"

namespace hsmsignd::provider {

// Every fetch the provider makes for itself (digests, the public keys' key management, the signature
// checks) goes to the other providers: asking itself would loop, and it has no digests of its own.
inline constexpr const char* kOthers = "provider!=hsmsignd";
inline constexpr const char* kProperties = "provider=hsmsignd";

// Reasons in the error queue ("hsmsignd: <reason>: <detail>").
enum Reason : int {
  kDaemonRefused = 1,  // the daemon answered with an error
  kDaemonUnreachable,  // no answer: not running, timed out, the connection broke
  kBadUri,             // a key URI that does not parse
  kKeyNotFound,        // no such keyset or kid, or no active key
  kUnsupported,        // an operation or parameter the daemon cannot serve
  kInternal,           // OpenSSL failed inside the provider
};

class ProviderContext {
 public:
  ProviderContext(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in);
  ~ProviderContext();
  ProviderContext(const ProviderContext&) = delete;
  ProviderContext& operator=(const ProviderContext&) = delete;

  bool ok() const { return libctx_ != nullptr; }
  OSSL_LIB_CTX* libctx() const { return libctx_; }
  const client::Client& client() const { return client_; }

  // Puts an error on the calling thread's queue, as OpenSSL's own providers do.
  void raise(Reason reason, std::string_view detail) const;
  void raise(const client::Error& e) const;

 private:
  const OSSL_CORE_HANDLE* handle_;
  OSSL_LIB_CTX* libctx_ = nullptr;
  client::Client client_;
  OSSL_FUNC_core_new_error_fn* new_error_ = nullptr;
  OSSL_FUNC_core_set_error_debug_fn* set_error_debug_ = nullptr;
  OSSL_FUNC_core_vset_error_fn* vset_error_ = nullptr;
};

// Each dispatch function receives the provider context as a void*.
inline ProviderContext& context_of(void* provctx) { return *static_cast<ProviderContext*>(provctx); }

}  // namespace hsmsignd::provider
