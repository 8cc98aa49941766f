// A key as the provider holds it: which daemon key signs (its kid, bound once when the key was loaded),
// and its public half as a key of another provider, which answers parameters, comparisons, exports and
// verification. The private half stays in the token; the provider never has it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/openssl_ptr.h"
#include "provider_context.h"

namespace hsmsignd::provider {

struct Key {
  ProviderContext* provider = nullptr;
  std::string kid;  // empty: a public key imported from another provider (to be compared or to verify)
  std::string keyset;
  crypto::EvpPkeyPtr public_key;

  bool has_private() const { return !kid.empty(); }
  // "EC" or "RSA": the key management that answers for it.
  std::string_view type() const;
};

// The two forms of URI the STORE and the DECODER take.
struct KeyUri {
  enum class By { keyset, kid } by = By::kid;
  std::string value;
};
inline constexpr std::string_view kUriScheme = "hsmsignd:";
// Parses `hsmsignd:keyset=NAME` or `hsmsignd:kid=KID`; nullopt for anything else.
std::optional<KeyUri> parse_uri(std::string_view uri);

// Asks the daemon for the key a URI names: a keyset= URI is resolved here, once, to its active key's
// kid, so a key loaded for a certificate keeps signing with that key across a rotation. Raises an
// error on the queue and returns nullptr when the daemon does not answer or has no such key.
std::unique_ptr<Key> load_key(ProviderContext& provider, const KeyUri& uri);

// A second handle on the same key (OpenSSL frees each handle on its own).
std::unique_ptr<Key> copy_key(const Key& key);

}  // namespace hsmsignd::provider
