// The routes of the admin socket (mode 0600): key ceremonies and emergency operations. Only root and
// the daemon's own user may use it, whatever the socket's permissions say.
#pragma once

#include "api/http_types.h"
#include "api/token_api.h"
#include "audit/audit_log.h"
#include "config/config.h"
#include "keyring/keyring.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "signers/signers.h"

namespace hsmsignd::api {

class AdminApi {
 public:
  AdminApi(const config::Config& config, signers::Signers& signers, keyring::Keyring& keyring,
           metrics::Metrics& metrics, audit::AuditLog& audit, TokenApi& tokens)
      : config_(config), signers_(signers), keyring_(keyring), metrics_(metrics), audit_(audit), tokens_(tokens) {}

  void handle(const policy::Peer& peer, const HttpRequest& request, Reply reply);

 private:
  void rotate(const policy::Peer& peer, const HttpRequest& request, Reply reply);
  void retire_or_destroy(const policy::Peer& peer, const HttpRequest& request, bool destroy, Reply reply);
  void checkpoint(const policy::Peer& peer, Reply reply);
  void custody(Reply reply);
  // Every ceremony step is recorded with the operator's uid before it runs: the record of one, for the
  // caller to complete and append.
  static audit::Record ceremony_record(const policy::Peer& peer, std::string_view operation);

  const config::Config& config_;
  signers::Signers& signers_;
  keyring::Keyring& keyring_;
  metrics::Metrics& metrics_;
  audit::AuditLog& audit_;
  TokenApi& tokens_;
};

}  // namespace hsmsignd::api
