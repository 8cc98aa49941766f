#include "crypto/crypto_error.h"

#include <openssl/err.h>

#include <array>

namespace hsmsignd::crypto {

CryptoError openssl_error(std::string_view what) {
  std::string message(what);
  std::array<char, 256> buf{};
  // Keep the first few reasons: the innermost is the useful one, the rest repeat it.
  for (int kept = 0; kept < 4; ++kept) {
    const unsigned long code = ERR_get_error();
    if (code == 0) break;
    ERR_error_string_n(code, buf.data(), buf.size());
    message += kept == 0 ? ": " : "; ";
    message += buf.data();
  }
  ERR_clear_error();
  return CryptoError{std::move(message)};
}

}  // namespace hsmsignd::crypto
