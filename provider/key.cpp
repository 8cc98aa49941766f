#include "key.h"

#include <openssl/x509.h>

#include <algorithm>

namespace hsmsignd::provider {
namespace {

bool uri_value_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

}  // namespace

std::string_view Key::type() const { return EVP_PKEY_is_a(public_key.get(), "EC") ? "EC" : "RSA"; }

std::optional<KeyUri> parse_uri(std::string_view uri) {
  if (!uri.starts_with(kUriScheme)) return std::nullopt;
  uri.remove_prefix(kUriScheme.size());
  KeyUri out;
  if (uri.starts_with("keyset=")) {
    out.by = KeyUri::By::keyset;
    uri.remove_prefix(7);
  } else if (uri.starts_with("kid=")) {
    uri.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  // Keyset names and kids (RFC 7638 thumbprints, base64url) use these characters only.
  if (uri.empty() || uri.size() > 128 || !std::all_of(uri.begin(), uri.end(), uri_value_char)) return std::nullopt;
  out.value = std::string(uri);
  return out;
}

std::unique_ptr<Key> load_key(ProviderContext& provider, const KeyUri& uri) {
  auto keys = provider.client().keys();
  if (!keys) {
    provider.raise(keys.error());
    return nullptr;
  }
  const bool by_keyset = uri.by == KeyUri::By::keyset;
  auto found = std::find_if(keys->begin(), keys->end(), [&](const client::KeyInfo& k) {
    return by_keyset ? k.keyset == uri.value && k.state == "active" : k.kid == uri.value;
  });
  if (found == keys->end()) {
    provider.raise(kKeyNotFound, by_keyset ? "keyset \"" + uri.value + "\" has no active key"
                                           : "the daemon has no key with kid " + uri.value);
    return nullptr;
  }
  const unsigned char* der = found->spki.data();
  crypto::EvpPkeyPtr public_key(
      d2i_PUBKEY_ex(nullptr, &der, static_cast<long>(found->spki.size()), provider.libctx(), kOthers));
  if (!public_key || der != found->spki.data() + found->spki.size() ||
      !(EVP_PKEY_is_a(public_key.get(), "EC") || EVP_PKEY_is_a(public_key.get(), "RSA"))) {
    provider.raise(kInternal, "the daemon's public key for kid " + found->kid + " is not an EC or RSA key");
    return nullptr;
  }
  return std::make_unique<Key>(Key{&provider, found->kid, found->keyset, std::move(public_key)});
}

std::unique_ptr<Key> copy_key(const Key& key) {
  EVP_PKEY_up_ref(key.public_key.get());
  return std::make_unique<Key>(Key{key.provider, key.kid, key.keyset, crypto::EvpPkeyPtr(key.public_key.get())});
}

}  // namespace hsmsignd::provider
