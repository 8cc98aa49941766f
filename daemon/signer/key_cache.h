// The keys a signer process signs with, found by CKA_ID the first time and kept. A key signs only if it
// passes the custody checks (pkcs11::Signer::open) and only with the algorithm of the keyset its label
// names: the front asks, but the signer decides.
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
  KeyCache(pkcs11::SessionPool& pool, const config::Config& config) : pool_(pool), config_(config) {}

  pkcs11::Result<std::shared_ptr<pkcs11::Signer>> get(const Bytes& id, Algorithm algorithm);
  // After the key was relabelled or destroyed: found (and checked) again at its next use.
  void forget(ByteView id);

 private:
  pkcs11::Result<std::shared_ptr<pkcs11::Signer>> open(const Bytes& id, Algorithm algorithm);

  pkcs11::SessionPool& pool_;
  const config::Config& config_;
  std::mutex mutex_;
  std::map<Bytes, std::shared_ptr<pkcs11::Signer>> signers_;
};

}  // namespace hsmsignd::signer
