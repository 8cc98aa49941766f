#include "audit/audit_key.h"

#include <openssl/rand.h>

#include <chrono>

#include "jose/jwk.h"
#include "keyring/key_label.h"
#include "keyring/keyring.h"
#include "keys.h"
#include "sign.h"

namespace hsmsignd::audit {

pkcs11::Result<AuditKey> open_audit_key(pkcs11::SessionPool& pool,
                                        const std::function<void(const std::string&, const std::string&)>& on_keygen) {
  return pool.run([&](pkcs11::SessionRef s) -> pkcs11::Result<AuditKey> {
    auto find = [&]() -> pkcs11::Result<std::optional<pkcs11::KeyObject>> {
      auto objects = pkcs11::list_keys(s);
      if (!objects) return objects.error();
      std::optional<pkcs11::KeyObject> oldest;
      keyring::TimePoint oldest_time = keyring::TimePoint::max();
      // The keyring's own rule (custody, both halves, an ES256 key), so the custody report agrees.
      for (const auto& [object, label] : keyring::keys_of(kAuditKeyset, Algorithm::ES256, *objects).keys) {
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
    if (!*found) {
      Bytes id(16);
      RAND_bytes(id.data(), static_cast<int>(id.size()));
      const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
      const std::string label = keyring::KeyLabel{kAuditKeyset, now, now}.str();
      auto made = pkcs11::generate_key_pair(s, {Algorithm::ES256, 0, id, label});
      if (!made) return made.error();
      found = find();
      if (!found) return found.error();
      if (!*found) return pkcs11::Error::not_found("the new audit key is not on the token");
      auto pub = pkcs11::export_public_key(s, **found, Algorithm::ES256);
      if (pub) on_keygen(jose::thumbprint(*pub), label);
    }
    auto signer = pkcs11::Signer::open(pool, s, **found, Algorithm::ES256);
    if (!signer) return signer.error();
    // Every checkpoint signature is checked before it is written.
    auto checked = signing::CheckedSigner::make(std::move(*signer), signing::VerifyPolicy::all);
    if (!checked) return checked.error();
    return AuditKey{jose::thumbprint((*checked)->public_key()), std::move(*checked)};
  });
}

}  // namespace hsmsignd::audit
