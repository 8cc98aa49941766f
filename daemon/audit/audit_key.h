// The audit key: a key pair of its own (keyset "audit"), generated in the token like every key, that
// signs the audit chain's head in checkpoint lines. Its public half is also written beside the log,
// so a copy of the log can be checked offline.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "signing/checked_signer.h"
#include "token_ops.h"

namespace hsmsignd::audit {

inline constexpr const char* kAuditKeyset = "audit";

struct AuditKey {
  std::string kid;
  std::shared_ptr<signing::CheckedSigner> signer;
};

// Finds the audit key on the token (one `custody` accepts), or generates it (`on_keygen(kid, label)` is
// then called).
pkcs11::Result<AuditKey> open_audit_key(pkcs11::TokenOps& token, const pkcs11::CustodyPolicy& custody,
                                        const std::function<void(const std::string&, const std::string&)>& on_keygen);

}  // namespace hsmsignd::audit
