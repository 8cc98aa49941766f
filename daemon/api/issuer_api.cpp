#include "api/issuer_api.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "api/if_none_match.h"
#include "api/json_body.h"
#include "api/peer_record.h"
#include "common/json_writer.h"
#include "api/requests.h"
#include "api/token_builder.h"
#include "common/rfc3339.h"
#include "crypto/digest.h"
#include "jose/base64url.h"
#include "jose/jws.h"
#include "log/log.h"
#include "policy/sign_grant.h"
#include "signing/checked_signer.h"

namespace hsmsignd::api {
namespace {

constexpr std::string_view kJwksPath = "/.well-known/jwks.json";
constexpr std::string_view kStatusListPrefix = "/statuslists/";

HttpResponse json_response(const nlohmann::json& body) { return {200, body.dump(), "application/json", {}, {}}; }

// The answer to a failed signature. A token error names the CKR_ code, nothing more of the token.
ApiError signing_failure(const pkcs11::Error& e) {
  if (e.kind == pkcs11::ErrorKind::busy) return ApiError::unavailable("the token is busy: " + e.detail);
  if (e.kind == pkcs11::ErrorKind::token)
    return ApiError::unavailable("the token could not sign: " + e.function + " " + pkcs11::rv_name(e.rv));
  return ApiError::unavailable("the token could not sign");
}

metrics::Route route_of(std::string_view t) {
  using metrics::Route;
  if (t == "/v1/jwt") return Route::jwt;
  if (t == "/v1/jws") return Route::jws;
  if (t == "/v1/sign") return Route::sign;
  if (t == "/v1/revoke") return Route::revoke;
  if (t == "/v1/verify") return Route::verify;
  if (t == "/v1/keys") return Route::keys;
  if (t == kJwksPath) return Route::jwks;
  if (t == "/healthz") return Route::healthz;
  if (t == "/metrics") return Route::metrics;
  if (t.starts_with(kStatusListPrefix)) return Route::statuslist;
  return Route::other;
}


}  // namespace

Reply IssuerApi::metered(const HttpRequest& request, Reply reply) {
  return [&metrics = s_.metrics, route = route_of(request.target), reply = std::move(reply)](HttpResponse r) {
    metrics.request(route, r.status);
    reply(std::move(r));
  };
}

void IssuerApi::handle(const policy::Peer& peer, const config::ClientConfig* client, const HttpRequest& request,
                       Reply unmetered) {
  Reply reply = metered(request, std::move(unmetered));
  if (client == nullptr) {
    log::warning("deny", {{"uid", std::to_string(peer.uid)}, {"gid", std::to_string(peer.gid)},
                          {"pid", std::to_string(peer.pid)}, {"reason", "no [[client]] matches the peer"},
                          {"target", request.target}});
    auto denied = peer_record("deny", peer, nullptr, true);
    denied.add().string("reason", "no [[client]] matches the peer").string("target", request.target);
    s_.audit.append(std::move(denied));
    reply(error_response(ApiError::forbidden("this peer (uid " + std::to_string(peer.uid) + ") is not a client")));
    return;
  }
  const auto& t = request.target;
  const bool post = request.method == "POST", get = request.method == "GET";
  if (t == "/v1/jwt" || t == "/v1/jws" || t == "/v1/sign") {
    if (!post) return reply(error_response(ApiError::method_not_allowed(t + " takes POST", "POST")));
    if (auto wait = limiter_.take(*client, peer, policy::RateLimiter::Clock::now()); wait.count() > 0)
      return reply(error_response(ApiError::overloaded("client \"" + client->name + "\" is over its max_rate", wait.count())));
    if (t == "/v1/jwt") return issue_jwt(peer, *client, request, std::move(reply));
    if (t == "/v1/jws") return sign_jws(peer, *client, request, std::move(reply));
    return sign_digest(peer, *client, request, std::move(reply));
  }
  if (t == "/v1/revoke" || t == "/v1/verify") {
    if (!post) return reply(error_response(ApiError::method_not_allowed(t + " takes POST", "POST")));
    const auto record_for = [&peer, client](std::string event) { return peer_record(std::move(event), peer, client, true); };
    if (t == "/v1/verify") return s_.tokens.verify(request, t, record_for, std::move(reply));
    // Each revocation is a durable write: max_rate bounds a flood of them as it bounds signatures.
    if (auto wait = limiter_.take(*client, peer, policy::RateLimiter::Clock::now()); wait.count() > 0)
      return reply(error_response(ApiError::overloaded("client \"" + client->name + "\" is over its max_rate", wait.count())));
    return s_.tokens.revoke(*client, request, record_for, std::move(reply));
  }
  if (t == "/v1/keys" || t == kJwksPath || t == "/healthz" || t == "/metrics") {
    if (!get) return reply(error_response(ApiError::method_not_allowed(t + " takes GET", "GET")));
    if (t == "/v1/keys") return reply(keys());
    if (t == kJwksPath) return reply(jwks(request));
    if (t == "/healthz") return reply(healthz());
    return metrics(std::move(reply));
  }
  reply(error_response(ApiError::not_found("no route " + t)));
}

void IssuerApi::handle_public(const HttpRequest& request, Reply unmetered) {
  Reply reply = metered(request, std::move(unmetered));
  const auto& t = request.target;
  const bool list = s_.status_lists && t.starts_with(kStatusListPrefix);
  if (t != kJwksPath && t != "/healthz" && !list) return reply(error_response(ApiError::not_found("no route " + t)));
  if (request.method != "GET" && request.method != "HEAD")
    return reply(error_response(ApiError::method_not_allowed("this listener is read-only", "GET, HEAD")));
  if (list) return status_list(request, std::string_view(t).substr(kStatusListPrefix.size()), std::move(reply));
  reply(t == kJwksPath ? jwks(request) : healthz());
}

void IssuerApi::sign_with(const config::KeysetConfig& keyset, bool digest, audit::Record record, Reply reply,
                          const MakeInput& make_input, Done done) {
  auto view = s_.keyring.view();
  const keyring::Key* key = view->active_key(keyset.name);
  if (key == nullptr) return reply(error_response(ApiError::unavailable("keyset \"" + keyset.name + "\" has no active key")));
  sign_by(view, *key, digest, std::nullopt, std::move(record), std::move(reply), make_input, std::move(done));
}

void IssuerApi::sign_by(std::shared_ptr<const keyring::View> view, const keyring::Key& key_ref, bool digest,
                        std::optional<DigestScheme> scheme, audit::Record record, Reply reply,
                        const MakeInput& make_input, Done done) {
  const keyring::Key* key = &key_ref;
  signing::SignJob job{key->signer, make_input(*key, record), digest, scheme, {}};
  job.done = [this, view, key, reply, record = std::move(record), done = std::move(done)](
                 pkcs11::Result<Bytes> signature, std::string input, signing::SignTimes times) mutable {
    s_.metrics.stage(metrics::Stage::queue, times.queued);
    s_.metrics.stage(metrics::Stage::sign, times.signing);
    if (!signature) {
      const auto& e = signature.error();
      // The key is gone from the token while this daemon still has it: retired on another host sharing
      // the token. Read the token now rather than refuse until the next periodic read.
      if (e.kind == pkcs11::ErrorKind::not_found) s_.keyring.reread_now();
      // One line when the token starts failing, not one per refused request.
      if (e.kind != pkcs11::ErrorKind::busy && s_.health.token_failed(e.what())) {
        log::error("token_unavailable", {{"keyset", key->keyset}, {"kid", key->kid}, {"error", e.what()}});
        audit::Record failed{"error", true};
        failed.add().string("keyset", key->keyset).string("kid", key->kid).string("reason", e.what());
        s_.audit.append(std::move(failed));
      }
      return reply(error_response(signing_failure(e)));
    }
    if (s_.health.token_ok()) log::info("token_available", {{"keyset", key->keyset}});
    s_.metrics.signature(key->keyset);
    record.add().string("keyset", key->keyset).string("kid", key->kid);
    HttpResponse answer = done(*key, input, *signature);
    // Answered only once the record of this signature is on disk; without a record, no answer.
    s_.audit.append(std::move(record), [&counters = s_.metrics, signed_at = std::chrono::steady_clock::now(), reply,
                                        answer = std::move(answer)](bool durable) mutable {
      if (!durable) return reply(error_response(ApiError::unavailable("the audit log cannot be written")));
      counters.stage(metrics::Stage::audit, std::chrono::steady_clock::now() - signed_at);
      reply(std::move(answer));
    });
  };
  if (!s_.signers.submit(std::move(job)))
    reply(error_response(ApiError::overloaded("too many requests are waiting for the token", 1)));
}

void IssuerApi::report_refusals() {
  for (const auto& r : limiter_.take_unreported()) {
    log::warning("deny", {{"client", r.client->name}, {"reason", "max_rate"}, {"refused", std::to_string(r.refused)}});
    auto denied = peer_record("deny", r.first_peer, r.client, true);
    denied.add().string("reason", "max_rate").number("refused", static_cast<std::int64_t>(r.refused));
    s_.audit.append(std::move(denied));
  }
}

void IssuerApi::issue_jwt(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request,
                          Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  auto parsed = parse_jwt_request(*body);
  if (!parsed) return reply(error_response(parsed.error()));
  if (!policy::subject_allowed(client, parsed->sub)) {
    log::warning("deny", {{"client", client.name}, {"uid", std::to_string(peer.uid)}, {"reason", "subject not allowed"},
                          {"sub", parsed->sub}});
    auto denied = peer_record("deny", peer, &client, true);
    denied.add().string("reason", "subject not allowed").string("rule", "subjects").string("sub", parsed->sub);
    s_.audit.append(std::move(denied));
    return reply(error_response(
        ApiError::forbidden("subject \"" + parsed->sub + "\" is not among client \"" + client.name + "\"'s subjects")));
  }
  auto grant = policy::grant_jwt(s_.config, client, *parsed);
  if (!grant) return reply(error_response(grant.error()));

  JwtClaims claims;
  claims.iss = client.issuer;
  claims.sub = parsed->sub;
  claims.aud = grant->aud;
  claims.aud_is_array = grant->aud_is_array;
  claims.iat = unix_now();
  claims.exp = claims.iat + grant->ttl.count();
  claims.jti = new_jti();
  claims.extra = &parsed->claims;
  if (s_.status_lists) {
    auto slot = s_.status_lists->allocate(grant->keyset->name, claims.iat);
    if (!slot) return reply(error_response(ApiError::unavailable("no Status List index could be reserved")));
    claims.status_uri = std::move(slot->uri);
    claims.status_idx = slot->idx;
  }
  const std::string payload = jwt_payload(claims);
  auto record = peer_record("issue", peer, &client);
  auto members = record.add();
  members.string("jti", claims.jti).string("sub", claims.sub);
  write_audience(members, claims).number("exp", claims.exp);
  sign_with(
      *grant->keyset, false, std::move(record), std::move(reply),
      [&](const keyring::Key& key, audit::Record&) {
        return jose::signing_input(jwt_header(key.algorithm, key.kid, parsed->typ), as_bytes(payload));
      },
      [jti = claims.jti, iat = claims.iat, exp = claims.exp](const keyring::Key& key, const std::string& input,
                                                            const Bytes& signature) {
        std::string body;
        body.reserve(input.size() + 2 * signature.size() + 160);
        JsonObjectWriter(body)
            .string("alg", name(key.algorithm))
            .number("exp", exp)
            .number("iat", iat)
            .string("jti", jti)
            .string("jwt", jose::compact(input, signature))
            .string("kid", key.kid)
            .close();
        return HttpResponse{200, std::move(body), "application/json", {}, {}};
      });
}

void IssuerApi::sign_jws(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request,
                         Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  auto parsed = parse_jws_request(*body);
  if (!parsed) return reply(error_response(parsed.error()));
  auto keyset = policy::choose_keyset(s_.config, client, parsed->keyset, config::Operation::jws);
  if (!keyset) return reply(error_response(keyset.error()));
  // The record names what was signed by its SHA-256, never the payload itself.
  auto record = peer_record("sign", peer, &client);
  record.add().string("operation", "jws");
  sign_with(
      **keyset, false, std::move(record), std::move(reply),
      [&](const keyring::Key& key, audit::Record& r) {
        std::string input =
            jose::signing_input(jws_header(key.algorithm, key.kid, parsed->typ, parsed->cty), parsed->payload);
        r.add().string("digest", jose::base64url_encode(crypto::sha256(as_bytes(input))));
        return input;
      },
      [](const keyring::Key& key, const std::string& input, const Bytes& signature) {
        return json_response({{"jws", jose::compact(input, signature)}, {"kid", key.kid}, {"alg", name(key.algorithm)}});
      });
}

void IssuerApi::sign_digest(const policy::Peer& peer, const config::ClientConfig& client, const HttpRequest& request,
                            Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  auto parsed = parse_sign_request(*body);
  if (!parsed) return reply(error_response(parsed.error()));
  auto view = s_.keyring.view();
  auto grant = policy::grant_sign(s_.config, client, *view, *parsed);
  if (!grant) return reply(error_response(grant.error()));
  const DigestScheme scheme = grant->scheme;
  const bool rsa = key_type(grant->keyset->algorithm) == KeyType::RSA;
  auto record = peer_record("sign", peer, &client);
  auto members = record.add();
  members.string("operation", "sign").string("digest", jose::base64url_encode(parsed->digest)).string("hash", name(scheme.hash));
  if (rsa) members.string("padding", name(scheme.padding));
  sign_by(
      view, *grant->key, true, scheme, std::move(record), std::move(reply),
      [&](const keyring::Key&, audit::Record&) { return std::string(parsed->digest.begin(), parsed->digest.end()); },
      [scheme, rsa](const keyring::Key& key, const std::string&, const Bytes& signature) {
        nlohmann::json answer{{"signature", jose::base64url_encode(signature)},
                              {"kid", key.kid},
                              {"alg", name(key.algorithm)},
                              {"hash", name(scheme.hash)}};
        if (rsa) answer["padding"] = name(scheme.padding);
        return json_response(answer);
      });
}

HttpResponse IssuerApi::keys() const {
  auto view = s_.keyring.view();
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& k : view->keys) {
    nlohmann::json key{{"kid", k.kid},
                       {"keyset", k.keyset},
                       {"alg", name(k.algorithm)},
                       {"usage", config::name(k.usage)},
                       {"rotation", config::name(k.rotation)},
                       {"state", keyring::name(k.schedule.state)},
                       {"created", rfc3339(k.created)},
                       {"activates", rfc3339(k.schedule.activates)},
                       {"spki", jose::base64url_encode(k.signer->spki())}};
    // A manual keyset's key ends when an operator acts: no date to give, so none is written.
    if (auto t = keyring::unless_never(k.schedule.deactivates)) key["deactivates"] = rfc3339(*t);
    if (auto t = keyring::unless_never(k.schedule.retires)) key["retires"] = rfc3339(*t);
    keys.push_back(std::move(key));
  }
  return json_response({{"keys", keys}});
}

HttpResponse IssuerApi::jwks(const HttpRequest& request) const {
  auto view = s_.keyring.view();
  HttpResponse r{200, view->jwks, "application/json", view->etag,
                 "public, max-age=" + std::to_string(s_.config.jwks.max_age.count())};
  if (!request.if_none_match.empty() && none_match_fails(request.if_none_match, view->etag)) {
    r.status = 304;
    r.body.clear();
  }
  return r;
}

HttpResponse IssuerApi::healthz() const {
  auto report = s_.health.report();
  if (auto audit_failure = s_.audit.failure(); !audit_failure.empty())
    report = {Health::Status::unavailable, std::move(audit_failure)};
  if (s_.signers.running() == 0) report = {Health::Status::unavailable, "no signer process is running"};
  if (report.status == Health::Status::ok) {
    if (auto reason = s_.keyring.degraded(); !reason.empty()) report = {Health::Status::degraded, std::move(reason)};
  }
  // Signing goes on without the revocation store; verification and revocation do not.
  if (report.status == Health::Status::ok && !s_.revocations.up())
    report = {Health::Status::degraded, "revocation store unreachable: " + s_.revocations.down_reason()};
  switch (report.status) {
    case Health::Status::ok: return json_response({{"status", "ok"}});
    case Health::Status::degraded: return json_response({{"status", "degraded"}, {"reason", report.reason}});
    case Health::Status::unavailable:
      return {503, nlohmann::json{{"status", "unavailable"}, {"reason", report.reason}}.dump(), "application/json", {}, {}};
  }
  return json_response({{"status", "ok"}});
}

void IssuerApi::metrics(Reply reply) const {
  // The token's counters are the signer processes': asked for now, answered when they have all replied.
  s_.signers.collect([this, reply = std::move(reply)](signers::Totals t) {
    metrics::Gauges g{t.stats.sessions_in_use,
                      t.stats.sessions,
                      s_.signers.in_flight(),
                      signing::CheckedSigner::caught_faults(),
                      s_.health.report().status != Health::Status::unavailable,
                      t.stats.recoveries,
                      t.stats.failed_recoveries,
                      s_.connections.load(),
                      {},
                      s_.revocations.entries(),
                      s_.revocations.up(),
                      s_.revocations.outages(),
                      std::move(t.stats.calls),
                      t.running,
                      t.configured,
                      t.deaths};
    for (auto& [client, refused] : limiter_.totals()) g.rate_limited.push_back({std::move(client), refused});
    reply({200, s_.metrics.render(g), "text/plain; version=0.0.4", {}, {}});
  });
}

}  // namespace hsmsignd::api
