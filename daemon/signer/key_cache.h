// The keys a signer process signs with, found by CKA_ID the first time and kept. A key signs only if it
// passes the custody checks (pkcs11::Signer::open), only with the algorithm of the keyset its label
// names, and with another hash or padding than the algorithm's own only if that keyset is a tls one:
// the front asks, but the signer decides.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "config/config.h"
#include "sign.h"

namespace hsmsignd::signer {

// The algorithm keys of this keyset sign with: the configured keyset's, ES256 for the audit key, none
// for a keyset this configuration does not have.
std::optional<Algorithm> keyset_algorithm(const config::Config& config, std::string_view keyset);

class KeyCache {
 public:
  KeyCache(pkcs11::SessionPool& pool, const config::Config& config, pkcs11::SigningRules rules)
      : pool_(pool), config_(config), rules_(rules) {}

  // `scheme`: how the digest to be signed was made (the algorithm's own for JWS).
  pkcs11::Result<std::shared_ptr<pkcs11::Signer>> get(const Bytes& id, Algorithm algorithm, DigestScheme scheme);
  // After the key was relabelled or destroyed: found (and checked) again at its next use.
  void forget(ByteView id);

 private:
  struct Entry {
    std::shared_ptr<pkcs11::Signer> signer;
    bool any_scheme = false;  // a tls keyset's key: any hash, and either padding for RSA
  };
  pkcs11::Result<Entry> open(const Bytes& id, Algorithm algorithm);

  pkcs11::SessionPool& pool_;
  const config::Config& config_;
  const pkcs11::SigningRules rules_;
  std::mutex mutex_;
  std::map<Bytes, Entry> signers_;
};

}  // namespace hsmsignd::signer
