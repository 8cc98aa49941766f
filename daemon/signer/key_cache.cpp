#include "signer/key_cache.h"

#include "audit/audit_key.h"
#include "common/hex.h"
#include "keyring/key_label.h"
#include "log/log.h"
#include "token_rules.h"

namespace hsmsignd::signer {
std::optional<Algorithm> keyset_algorithm(const config::Config& config, std::string_view keyset) {
  if (keyset == audit::kAuditKeyset) return Algorithm::ES256;
  if (const auto* k = config.keyset(keyset)) return k->algorithm;
  return std::nullopt;
}

pkcs11::Result<std::shared_ptr<pkcs11::Signer>> KeyCache::get(const Bytes& id, Algorithm algorithm, DigestScheme scheme) {
  auto checked = [&](const Entry& e) -> pkcs11::Result<std::shared_ptr<pkcs11::Signer>> {
    if (e.signer->algorithm() != algorithm)
      return pkcs11::Error::refused("key " + hex(id) + " signs with " + std::string(name(e.signer->algorithm())) +
                                    ", not " + std::string(name(algorithm)));
    // A JWT verifier trusts this key's signatures over its algorithm's digests: nothing else is signed.
    if (scheme != default_scheme(algorithm) && !e.any_scheme)
      return pkcs11::Error::refused("key " + hex(id) + " belongs to a jwt keyset: it signs " + std::string(name(algorithm)) +
                                    " digests only");
    return e.signer;
  };
  {
    std::lock_guard lock(mutex_);
    if (auto it = signers_.find(id); it != signers_.end()) return checked(it->second);
  }
  auto opened = open(id, algorithm);
  if (!opened && pkcs11::find_again_after_reinitialisation(opened.error())) {
    log::warning("key_not_found", {{"key", hex(id)}, {"action", "re-initialising the module to look again"}});
    if (pool_.reinitialize(opened.error())) opened = open(id, algorithm);
  }
  if (!opened) return opened.error();
  std::lock_guard lock(mutex_);
  return checked(signers_.emplace(id, std::move(*opened)).first->second);
}

pkcs11::Result<KeyCache::Entry> KeyCache::open(const Bytes& id, Algorithm algorithm) {
  return pool_.run([&](pkcs11::SessionRef s) -> pkcs11::Result<Entry> {
    auto object = pkcs11::find_key(s, id);
    if (!object) return object.error();
    if (!*object) return pkcs11::Error::not_found("no key with CKA_ID " + hex(id) + " on the token");
    // The keyset in the key's own label says which algorithm it may sign with; a key hsmsignd did not
    // label signs nothing.
    const auto label = keyring::KeyLabel::parse((*object)->label);
    if (!label) return pkcs11::Error::refused("key " + hex(id) + " is not labelled as one of hsmsignd's keys");
    const std::optional<Algorithm> allowed = keyset_algorithm(config_, label->keyset);
    if (!allowed)
      return pkcs11::Error::refused("key " + hex(id) + " belongs to keyset \"" + label->keyset + "\", which is not configured");
    if (*allowed != algorithm)
      return pkcs11::Error::refused("key " + hex(id) + " belongs to keyset \"" + label->keyset + "\", which signs with " +
                                    std::string(name(*allowed)) + ", not " + std::string(name(algorithm)));
    auto signer = pkcs11::Signer::open(pool_, s, **object, algorithm, rules_);
    if (!signer) return signer.error();
    const config::KeysetConfig* keyset = config_.keyset(label->keyset);
    return Entry{std::move(*signer), keyset != nullptr && keyset->usage == config::Usage::tls};
  });
}

void KeyCache::forget(ByteView id) {
  std::lock_guard lock(mutex_);
  signers_.erase(Bytes(id.begin(), id.end()));
}

}  // namespace hsmsignd::signer
