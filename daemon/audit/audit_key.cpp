#include "audit/audit_key.h"

#include <openssl/rand.h>

#include <chrono>

#include "jose/jwk.h"
#include "keyring/key_label.h"
#include "keyring/keyring.h"

namespace hsmsignd::audit {

pkcs11::Result<AuditKey> open_audit_key(pkcs11::TokenOps& token, const pkcs11::CustodyPolicy& custody,
                                        const std::function<void(const std::string&, const std::string&)>& on_keygen) {
  auto find = [&]() -> pkcs11::Result<std::optional<pkcs11::KeyObject>> {
    auto objects = token.list_keys();
    if (!objects) return objects.error();
    std::optional<pkcs11::KeyObject> oldest;
    keyring::TimePoint oldest_time = keyring::TimePoint::max();
    // The keyring's own rule (custody, both halves, an ES256 key), so the custody report agrees.
    for (const auto& [object, label] : keyring::keys_of(kAuditKeyset, Algorithm::ES256, *objects, custody).keys) {
      if (label.retired) continue;
      if (label.activates < oldest_time) {  // two daemons racing at first start agree on the oldest
        oldest_time = label.activates;
        oldest = *object;
      }
    }
    return oldest;
  };
  auto found = find();
  if (!found) return found.error();
  const bool generated = !*found;
  if (generated) {
    Bytes id(16);
    RAND_bytes(id.data(), static_cast<int>(id.size()));
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    const std::string label = keyring::KeyLabel{kAuditKeyset, now, now}.str();
    auto made = token.generate_key_pair({Algorithm::ES256, 0, id, label});
    if (!made) return made.error();
    // As the keyring does with a keyset's key: a key the custody rule refuses is not left on the token.
    if (!custody.trustworthy(made->custody)) {
      (void)token.destroy_key(id);
      return pkcs11::Error::refused(
          made->custody.local || !made->custody.confined()
              ? "the token generated a key without the custody attributes asked for"
              : "the token does not set CKA_LOCAL on the keys it generates ([token] require_local = false accepts "
                "that; see the configuration guide)");
    }
    found = find();
    if (!found) return found.error();
    if (!*found) return pkcs11::Error::not_found("the new audit key is not on the token");
  }
  auto public_key = token.export_public_key((*found)->id, Algorithm::ES256);
  if (!public_key) return public_key.error();
  const std::string kid = jose::thumbprint(*public_key);
  if (generated) on_keygen(kid, (*found)->label);
  // Every checkpoint signature is checked before it is written.
  auto checked = signing::CheckedSigner::make((*found)->id, std::move(*public_key), signing::VerifyPolicy::all);
  if (!checked) return checked.error();
  return AuditKey{kid, std::move(*checked)};
}

}  // namespace hsmsignd::audit
