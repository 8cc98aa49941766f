#include "api/token_api.h"

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/json_body.h"
#include "api/requests.h"
#include "hsmsignd/result.h"
#include "common/rfc3339.h"
#include "log/log.h"
#include "validation/validator.h"

namespace hsmsignd::api {
namespace {

using revocation::Entry;
using revocation::Kind;
using validation::Reason;

constexpr std::size_t kMaxIdLength = 256;
constexpr std::size_t kMaxSubLength = 1024;  // as /v1/jwt takes it
// A jti alone can name tokens that never existed, so an issuer could fill memory with them; a token
// revoked with the token itself is bounded by what was issued and is always taken.
constexpr std::size_t kMaxEntriesForJtiAlone = 1'000'000;

HttpResponse json_response(const nlohmann::json& body) { return {200, body.dump(), "application/json", {}, {}}; }

// A string member of 1 to `longest` bytes.
std::optional<ApiError> id_member(const nlohmann::json& body, const char* name, std::size_t longest = kMaxIdLength) {
  auto it = body.find(name);
  if (it == body.end()) return ApiError::bad_request(std::string("\"") + name + "\" is required");
  if (!it->is_string() || it->get_ref<const std::string&>().empty() || it->get_ref<const std::string&>().size() > longest)
    return ApiError::bad_request(std::string("\"") + name + "\" must be a string of 1 to " + std::to_string(longest) +
                                 " bytes");
  return std::nullopt;
}

std::optional<ApiError> time_member(const nlohmann::json& body, const char* name) {
  auto it = body.find(name);
  const auto latest = static_cast<std::uint64_t>(revocation::kLatestInstant);
  if (it != body.end() && !(it->is_number_unsigned() && it->get<std::uint64_t>() <= latest))
    return ApiError::bad_request(std::string("\"") + name + "\" must be unix seconds (an integer from 0 to 253402300799)");
  return std::nullopt;
}

// The keyset a Status List URI names: <base>/<keyset>/<window>-<host>.
std::string_view status_keyset(std::string_view uri) {
  const std::size_t last = uri.rfind('/');
  if (last == std::string_view::npos || last == 0) return {};
  const std::size_t before = uri.rfind('/', last - 1);
  return before == std::string_view::npos ? std::string_view{} : uri.substr(before + 1, last - before - 1);
}

nlohmann::json entry_json(const Entry& e) {
  nlohmann::json j{{"kind", kind_name(e.kind)}, {"name", e.name}, {"at", e.at}, {"expires", e.expires}};
  if (e.kind != Kind::keyset) j["iss"] = e.iss;
  return j;
}

std::string revoked_token(const Entry& e) {
  return nlohmann::json{{"revoked", true}, {"kind", "jti"}, {"iss", e.iss}, {"jti", e.name}, {"exp", e.at}}.dump();
}

// RFC 7009: a token that is not ours, or can no longer be used, is answered 200 too; the reason says why
// nothing was stored.
HttpResponse not_revoked(std::string_view reason) { return json_response({{"revoked", false}, {"reason", reason}}); }

}  // namespace

TokenApi::TokenApi(const config::Config& config, keyring::Keyring& keyring, revocation::Revocations& revocations,
                   metrics::Metrics& metrics, audit::AuditLog& audit)
    : config_(config),
      keyring_(keyring),
      revocations_(revocations),
      metrics_(metrics),
      audit_(audit),
      tolerance_(config.verify.clock_tolerance.count()),
      longest_ttl_(config.longest_ttl().count()) {
  for (const auto& c : config.clients) {
    if (!c.issuer.empty() && std::find(issuers_.begin(), issuers_.end(), c.issuer) == issuers_.end())
      issuers_.push_back(c.issuer);
    if (std::find(c.operations.begin(), c.operations.end(), config::Operation::jwt) == c.operations.end()) continue;
    for (const auto& keyset : c.keysets) jwt_issuers_.emplace_back(c.issuer, keyset);
  }
}

bool TokenApi::issues_jwts(const std::string& iss, const std::string& keyset) const {
  return std::find(jwt_issuers_.begin(), jwt_issuers_.end(), std::pair(iss, keyset)) != jwt_issuers_.end();
}

std::int64_t TokenApi::ceiling(std::int64_t now) const { return now + longest_ttl_ + tolerance_; }

void TokenApi::verify(const HttpRequest& request, std::string_view route, const RecordFor& record_for, Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  if (auto e = only_members(*body, {"jwt", "aud"})) return reply(error_response(*e));
  auto jwt = body->find("jwt");
  if (jwt == body->end() || !jwt->is_string()) return reply(error_response(ApiError::bad_request("\"jwt\" (a string) is required")));
  validation::Rules rules{[this](const std::string& iss, const std::string& keyset) { return issues_jwts(iss, keyset); },
                          std::nullopt, unix_now(), tolerance_, true};
  if (auto aud = body->find("aud"); aud != body->end()) {
    if (!aud->is_string()) return reply(error_response(ApiError::bad_request("\"aud\" must be a string")));
    rules.audience = aud->get<std::string>();
  }
  auto v = validation::validate(jwt->get_ref<const std::string&>(), keyring_.view(), rules);
  if (v.valid()) {
    const auto& c = v.facts;
    switch (revocations_.check({c.iss, c.sub, c.jti, v.key->keyset, c.iat})) {
      case revocation::Answer::not_revoked: break;
      case revocation::Answer::revoked:
        v.reason = Reason::revoked;
        v.message = "revoked: by its jti, or by a not-before of its subject or keyset later than its iat";
        break;
      case revocation::Answer::unavailable:
        v.reason = Reason::revocation_unavailable;
        v.message = "the revocation store cannot be reached: " + revocations_.down_reason();
        break;
    }
  }
  metrics_.verification(v.reason);
  if (v.reason == Reason::alg_not_allowed) report_confusion(v, route, record_for);
  nlohmann::json answer{{"valid", v.valid()}};
  if (!v.valid()) answer["reason"] = name(v.reason), answer["message"] = v.message;
  if (!v.alg.empty()) answer["alg"] = v.alg;
  if (v.key) {
    answer["kid"] = v.key->kid;
    answer["keyset"] = v.key->keyset;
    answer["state"] = keyring::name(v.key->schedule.state);
  }
  if (!v.header.is_null()) answer["header"] = std::move(v.header);
  if (!v.claims.is_null()) answer["claims"] = std::move(v.claims);
  reply(json_response(answer));
}

void TokenApi::report_confusion(const validation::Verdict& v, std::string_view route, const RecordFor& record_for) {
  metrics_.algorithm_confusion();
  const auto kid = v.header.find("kid");
  const std::string kid_text = kid != v.header.end() && kid->is_string() ? kid->get<std::string>().substr(0, 64) : "";
  log::warning("alg_confusion", {{"alg", v.alg}, {"kid", kid_text}, {"route", std::string(route)}});
  auto line = record_for("alg_confusion");
  auto members = line.add();
  members.string("alg", v.alg);
  if (!kid_text.empty()) members.string("kid", kid_text);
  members.string("route", route);
  audit_.append(std::move(line));
}

void TokenApi::revoke(const config::ClientConfig& client, const HttpRequest& request, const RecordFor& record_for,
                      Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  if (auto e = only_members(*body, {"jwt", "jti", "exp"})) return reply(error_response(*e));
  // A revocation names tokens of the caller's own iss; a client without one has issued none.
  if (client.issuer.empty())
    return reply(error_response(ApiError::forbidden("client \"" + client.name + "\" has no issuer: it issues no JWTs to revoke")));
  if (body->contains("jwt")) {
    if (body->size() != 1) return reply(error_response(ApiError::bad_request("give either \"jwt\" or \"jti\" and \"exp\"")));
    if (!(*body)["jwt"].is_string()) return reply(error_response(ApiError::bad_request("\"jwt\" must be a string")));
    return revoke_jwt((*body)["jwt"], &client.issuer, "/v1/revoke", record_for, std::move(reply));
  }
  if (auto e = id_member(*body, "jti")) return reply(error_response(*e));
  if (!body->contains("exp")) return reply(error_response(ApiError::bad_request("\"exp\" is required with \"jti\"")));
  if (auto e = time_member(*body, "exp")) return reply(error_response(*e));
  const std::int64_t now = unix_now(), exp = (*body)["exp"];
  if (exp + tolerance_ <= now) return reply(not_revoked("expired"));
  if (revocations_.entries() >= kMaxEntriesForJtiAlone)
    return reply(error_response(ApiError::overloaded("too many revocations are in force to take one by jti alone; "
                                                     "revoke with the token itself",
                                                     60)));
  // A jti alone revokes only within the caller's own iss: the daemon keeps no list of the jtis it issued.
  Entry e{Kind::jti, client.issuer, (*body)["jti"], std::min(exp, ceiling(now)), 0};
  e.expires = e.at + tolerance_;
  std::string answer = revoked_token(e);
  store({std::move(e)}, record_for, std::move(answer), std::move(reply));
}

void TokenApi::revoke_any(const HttpRequest& request, const RecordFor& record_for, Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  const char* forms[] = {"jwt", "jti", "sub", "keyset"};
  const auto given = std::count_if(std::begin(forms), std::end(forms), [&](const char* f) { return body->contains(f); });
  if (given != 1)
    return reply(error_response(ApiError::bad_request("give exactly one of \"jwt\", \"jti\", \"sub\" and \"keyset\"")));
  const std::int64_t now = unix_now();
  if (body->contains("jwt")) {
    if (auto e = only_members(*body, {"jwt"})) return reply(error_response(*e));
    if (!(*body)["jwt"].is_string()) return reply(error_response(ApiError::bad_request("\"jwt\" must be a string")));
    return revoke_jwt((*body)["jwt"], nullptr, "/v1/admin/revoke", record_for, std::move(reply));
  }
  const auto issuers_of = [&](std::vector<std::string>& out) -> std::optional<ApiError> {
    auto iss = body->find("iss");
    if (iss == body->end()) return out = issuers_, std::nullopt;
    if (auto e = id_member(*body, "iss", kMaxSubLength)) return e;
    // A typo must not be answered "revoked" while nothing any client issued is.
    if (std::find(issuers_.begin(), issuers_.end(), iss->get<std::string>()) == issuers_.end())
      return ApiError::bad_request("no client issues for iss \"" + iss->get<std::string>().substr(0, 256) + "\"");
    out = {iss->get<std::string>()};
    return std::nullopt;
  };
  const auto before = [&]() -> Expected<std::int64_t, ApiError> {
    if (auto e = time_member(*body, "before")) return *e;
    const std::int64_t at = body->value("before", now);
    if (at > now + tolerance_) return ApiError::bad_request("\"before\" is in the future");
    return at;
  };
  std::vector<Entry> entries;
  std::vector<std::string> issuers;
  if (body->contains("jti")) {
    if (auto e = only_members(*body, {"jti", "iss", "exp"}); e) return reply(error_response(*e));
    if (auto e = id_member(*body, "jti"); e) return reply(error_response(*e));
    if (auto e = time_member(*body, "exp"); e) return reply(error_response(*e));
    if (auto e = issuers_of(issuers); e) return reply(error_response(*e));
    const std::int64_t exp = std::min(body->value("exp", ceiling(now)), ceiling(now));
    for (const auto& iss : issuers) entries.push_back({Kind::jti, iss, (*body)["jti"], exp, exp + tolerance_});
  } else if (body->contains("sub")) {
    if (auto e = only_members(*body, {"sub", "iss", "before"}); e) return reply(error_response(*e));
    if (auto e = id_member(*body, "sub", kMaxSubLength); e) return reply(error_response(*e));
    if (auto e = issuers_of(issuers); e) return reply(error_response(*e));
    auto at = before();
    if (!at) return reply(error_response(at.error()));
    for (const auto& iss : issuers) entries.push_back({Kind::subject, iss, (*body)["sub"], *at, ceiling(*at)});
  } else {
    if (auto e = only_members(*body, {"keyset", "before"}); e) return reply(error_response(*e));
    if (auto e = id_member(*body, "keyset"); e) return reply(error_response(*e));
    const std::string keyset = (*body)["keyset"];
    if (!config_.keyset(keyset)) return reply(error_response(ApiError::not_found("no keyset \"" + keyset.substr(0, 64) + "\"")));
    auto at = before();
    if (!at) return reply(error_response(at.error()));
    entries.push_back({Kind::keyset, "", keyset, *at, ceiling(*at)});
  }
  if (entries.empty()) return reply(error_response(ApiError::bad_request("no client issues tokens: there is nothing to revoke")));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : entries) list.push_back(entry_json(e));
  store(std::move(entries), record_for, nlohmann::json{{"revoked", std::move(list)}}.dump(), std::move(reply));
}

void TokenApi::revoke_jwt(const std::string& jwt, const std::string* issuer, std::string_view route,
                          const RecordFor& record_for, Reply reply) {
  const std::int64_t now = unix_now();
  // The token's identity is wanted even before its nbf: a token not valid yet can still be revoked.
  auto v = validation::validate(jwt, keyring_.view(), {{}, std::nullopt, now, tolerance_, false});
  switch (v.reason) {
    case Reason::valid: break;
    case Reason::malformed:
    case Reason::missing_claim: return reply(error_response(ApiError::bad_request("the token does not parse: " + v.message)));
    case Reason::alg_not_allowed: report_confusion(v, route, record_for); return reply(not_revoked(name(v.reason)));
    default: return reply(not_revoked(name(v.reason)));  // not ours
  }
  if (issuer && v.facts.iss != *issuer)
    return reply(error_response(ApiError::forbidden("the token's iss is not this client's issuer")));
  if (v.facts.jti.size() > kMaxIdLength)
    return reply(error_response(ApiError::bad_request("the token's jti is over 256 bytes: not one of the daemon's")));
  // A Status List entry counts only in a list of the keyset that signed the token: the token's payload is
  // its signer's to write, and a client with jws on one keyset must not set bits in another's lists.
  if (v.facts.status_idx >= 0 && status_keyset(v.facts.status_uri) != v.key->keyset) {
    v.facts.status_uri.clear();
    v.facts.status_idx = -1;
  }
  if (v.facts.exp + tolerance_ <= now) return reply(not_revoked("expired"));
  Entry e{Kind::jti, v.facts.iss, v.facts.jti, std::min(v.facts.exp, ceiling(now)), 0, v.facts.status_uri,
          v.facts.status_idx};
  e.expires = e.at + tolerance_;
  std::string answer = revoked_token(e);
  store({std::move(e)}, record_for, std::move(answer), std::move(reply));
}

void TokenApi::store(std::vector<Entry> entries, const RecordFor& record_for, std::string answer, Reply reply) {
  // Never acknowledged unless both the store and the audit log take it. A store that is down is still
  // asked: its failure is the 503, and its success is how an embedded store is seen to work again.
  if (auto failure = audit_.failure(); !failure.empty())
    return reply(error_response(ApiError::unavailable("the audit log cannot be written")));
  // The lines are made now, while whoever asked is still here to be named; each is written once its entry
  // is durable.
  std::vector<audit::Record> lines;
  std::vector<Kind> kinds;
  for (const auto& e : entries) {
    auto line = record_for("revoke");
    auto m = line.add();
    m.string("kind", kind_name(e.kind));
    if (e.kind != Kind::keyset) m.string("iss", e.iss);
    if (e.kind == Kind::jti) m.string("jti", e.name).number("exp", e.at);
    if (e.kind == Kind::subject) m.string("sub", e.name).number("before", e.at);
    if (e.kind == Kind::keyset) m.string("keyset", e.name).number("before", e.at);
    lines.push_back(std::move(line));
    kinds.push_back(e.kind);
  }
  revocations_.revoke(std::move(entries), [this, lines = std::move(lines), kinds = std::move(kinds),
                                           answer = std::move(answer), reply = std::move(reply)](
                                              std::vector<bool> durable) mutable {
    // Every entry that is durable has its line, even when another of the same request is not: what is in
    // force is always in the audit log. The answer is 200 only when all are.
    const auto stored = static_cast<std::size_t>(std::count(durable.begin(), durable.end(), true));
    if (stored == 0)
      return reply(error_response(ApiError::unavailable("the revocation could not be stored: " + revocations_.down_reason())));
    const bool all = stored == durable.size();
    auto left = std::make_shared<std::size_t>(stored);
    auto ok = std::make_shared<bool>(true);
    for (std::size_t i = 0; i < durable.size(); ++i) {
      if (!durable[i]) continue;
      metrics_.revocation(kinds[i]);
      // The audit thread runs these one after another: counting needs no lock.
      audit_.append(std::move(lines[i]), [this, left, ok, all, reply, answer](bool written) {
        *ok = *ok && written;
        if (--*left != 0) return;
        if (!all)
          return reply(error_response(ApiError::unavailable("only part of the revocation could be stored: " +
                                                            revocations_.down_reason())));
        if (!*ok) return reply(error_response(ApiError::unavailable("the revocation is stored, its audit line is not")));
        reply({200, answer, "application/json", {}, {}});
      });
    }
  });
}

}  // namespace hsmsignd::api
