// POST /v1/verify and /v1/revoke, on the issuer socket and (without the issuer's limits) on the admin
// socket: a token is checked against the daemon's own keys and rules, and revoked for good.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.h"
#include "audit/audit_log.h"
#include "config/config.h"
#include "keyring/keyring.h"
#include "metrics/metrics.h"
#include "revocation/revocations.h"
#include "validation/validator.h"

namespace hsmsignd::api {

class TokenApi {
 public:
  // Makes the audit record of `event` naming whoever asked (the issuer's peer and client, or the operator).
  using RecordFor = std::function<audit::Record(std::string event)>;

  TokenApi(const config::Config& config, keyring::Keyring& keyring, revocation::Revocations& revocations,
           metrics::Metrics& metrics, audit::AuditLog& audit);

  void verify(const HttpRequest& request, std::string_view route, const RecordFor& record_for, Reply reply);
  // An issuer revokes only tokens of its own iss.
  void revoke(const config::ClientConfig& client, const HttpRequest& request, const RecordFor& record_for, Reply reply);
  // The operator revokes anything: a token, a jti, a subject's or a keyset's tokens before an instant.
  void revoke_any(const HttpRequest& request, const RecordFor& record_for, Reply reply);

 private:
  void revoke_jwt(const std::string& jwt, const std::string* issuer, std::string_view route, const RecordFor& record_for,
                  Reply reply);
  // An alg that is not the key's: counted, logged, and an audit line naming who presented it.
  void report_confusion(const validation::Verdict& v, std::string_view route, const RecordFor& record_for);
  // Stores the entries, writes their audit lines, then answers `answer`.
  void store(std::vector<revocation::Entry> entries, const RecordFor& record_for, std::string answer, Reply reply);
  std::int64_t ceiling(std::int64_t now) const;  // no token of this daemon expires later
  bool issues_jwts(const std::string& iss, const std::string& keyset) const;

  const config::Config& config_;
  keyring::Keyring& keyring_;
  revocation::Revocations& revocations_;
  metrics::Metrics& metrics_;
  audit::AuditLog& audit_;
  std::vector<std::string> issuers_;  // every client's issuer, once
  // (issuer, keyset) of every client that may have JWTs signed: a JWT of another pair is not the daemon's,
  // whatever its signature (a client with jws on a keyset signs any payload it likes).
  std::vector<std::pair<std::string, std::string>> jwt_issuers_;
  std::int64_t tolerance_, longest_ttl_;
};

}  // namespace hsmsignd::api
