// The routes of the issuer socket (and the read-only subset the loopback JWKS listener serves).
#pragma once

#include <atomic>
#include <cstdint>

#include "api/health.h"
#include "audit/audit_log.h"
#include "api/http_types.h"
#include "api/token_api.h"
#include "config/config.h"
#include "keyring/keyring.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "policy/rate_limiter.h"
#include "signers/signers.h"
#include "status_list/status_lists.h"
#include "status_list/token_cache.h"

namespace hsmsignd::api {

struct Services {
  const config::Config& config;
  keyring::Keyring& keyring;
  signers::Signers& signers;
  metrics::Metrics& metrics;
  Health& health;
  audit::AuditLog& audit;
  revocation::Revocations& revocations;
  TokenApi& tokens;
  status_list::StatusLists* status_lists;  // nullptr unless [revocation] status_list is on
  const std::atomic<std::int64_t>& connections;  // open connections, counted by the server
};

class IssuerApi {
 public:
  explicit IssuerApi(Services services)
      : s_(services), limiter_(services.config.clients), signed_lists_(services.config.revocation.status_list_ttl) {}

  // A request on the issuer socket from `peer`; `client` is its [[client]] entry, or nullptr.
  void handle(const policy::Peer& peer, const config::ClientConfig* client, const HttpRequest& request, Reply reply);
  // A request on the loopback JWKS listener: GET of the JWK Set and of /healthz only.
  void handle_public(const HttpRequest& request, Reply reply);

  // Writes one deny line per client whose max_rate refused requests since the last call. The daemon
  // calls it every second while some client has a max_rate, and once more at stop.
  void report_refusals();
  bool rate_limited_clients() const { return limiter_.limits_anyone(); }
  // Drops the signed tokens of lists that were retired.
  void forget_retired_lists();

 private:
  void issue_jwt(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request, Reply reply);
  void sign_jws(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request, Reply reply);
  void sign_digest(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request,
                   Reply reply);
  Reply metered(const HttpRequest& request, Reply reply);
  HttpResponse keys() const;
  HttpResponse jwks(const HttpRequest& request) const;
  HttpResponse healthz() const;
  // GET /statuslists/<keyset>/<window> on the JWKS listener: the list as a signed Status List Token.
  void status_list(const HttpRequest& request, std::string_view id, Reply reply);
  void metrics(Reply reply) const;

  // Queues a signature by the keyset's active key over make_input(key); once it is made, `record` (with
  // the kid added) goes to the audit log, and only when that line is durable does `done` turn the
  // signature into the answer.
  using MakeInput = std::function<std::string(const keyring::Key&, audit::Record&)>;
  using Done = std::function<HttpResponse(const keyring::Key&, const std::string& input, const Bytes& signature)>;
  void sign_with(const config::KeysetConfig& keyset, bool digest, audit::Record record, Reply reply,
                 const MakeInput& make_input, Done done);
  // The same with one key of `view` (which keeps it alive), and for a digest the scheme it was made with.
  void sign_by(std::shared_ptr<const keyring::View> view, const keyring::Key& key, bool digest,
               std::optional<DigestScheme> scheme, audit::Record record, Reply reply, const MakeInput& make_input,
               Done done);

  Services s_;
  policy::RateLimiter limiter_;
  status_list::TokenCache signed_lists_;
};

}  // namespace hsmsignd::api
