// The error every fallible function of hsmsignd::crypto returns.
#pragma once

#include <string>
#include <string_view>

namespace hsmsignd::crypto {

struct CryptoError {
  std::string message;

  const std::string& what() const { return message; }
};

// `what` followed by the reasons OpenSSL queued on this thread. Drains the queue, so a stale entry
// never shows up in an unrelated later error.
CryptoError openssl_error(std::string_view what);

}  // namespace hsmsignd::crypto
