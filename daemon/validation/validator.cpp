#include "validation/validator.h"

#include <algorithm>

#include "hsmsignd/bytes.h"
#include "jose/base64url.h"
#include "revocation/entry.h"

namespace hsmsignd::validation {
namespace {

// Members hsmsignd never writes, each of which asks a verifier to trust something outside the JWKS.
constexpr std::string_view kRefusedHeaders[] = {"crit", "jku", "jwk", "x5u", "x5c"};

Verdict& fail(Verdict& v, Reason reason, std::string message) {
  v.reason = reason;
  v.message = std::move(message);
  return v;
}

std::optional<nlohmann::json> decode_object(std::string_view part) {
  auto bytes = jose::base64url_decode(part);
  if (!bytes) return std::nullopt;
  auto json = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  return json;
}

bool read_string(const nlohmann::json& claims, const char* name, std::string& out) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

// Unix seconds from 0 to the year 9999: a token of /v1/jws carries whatever its client wrote, and sums with
// a larger value could overflow.
bool read_time(const nlohmann::json& claims, const char* name, std::int64_t& out) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number_unsigned() ||
      it->get<std::uint64_t>() > static_cast<std::uint64_t>(revocation::kLatestInstant))
    return false;
  out = it->get<std::int64_t>();
  return true;
}

bool read_audience(const nlohmann::json& claims, std::vector<std::string>& out) {
  auto it = claims.find("aud");
  if (it == claims.end()) return false;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
    return true;
  }
  if (!it->is_array() || it->empty()) return false;
  for (const auto& a : *it) {
    if (!a.is_string()) return false;
    out.push_back(a.get<std::string>());
  }
  return true;
}

// "status": {"status_list": {"idx": N, "uri": "..."}}, when the token has one; anything else is ignored.
void read_status(const nlohmann::json& claims, Claims& c) {
  auto status = claims.find("status");
  if (status == claims.end() || !status->is_object()) return;
  auto list = status->find("status_list");
  if (list == status->end() || !list->is_object()) return;
  auto idx = list->find("idx"), uri = list->find("uri");
  // An index beyond what any list could hold is no entry of this daemon's (nor would it fit an int64).
  if (idx == list->end() || uri == list->end() || !idx->is_number_unsigned() || !uri->is_string() ||
      idx->get<std::uint64_t>() > (std::uint64_t{1} << 40))
    return;
  c.status_idx = idx->get<std::int64_t>();
  c.status_uri = uri->get<std::string>();
}

}  // namespace

Verdict validate(std::string_view jwt, std::shared_ptr<const keyring::View> view, const Rules& rules) {
  Verdict v;
  v.view = std::move(view);
  const std::size_t first = jwt.find('.');
  const std::size_t second = first == std::string_view::npos ? first : jwt.find('.', first + 1);
  if (second == std::string_view::npos || jwt.find('.', second + 1) != std::string_view::npos)
    return fail(v, Reason::malformed, "a JWT is three base64url parts joined by '.'");
  auto header = decode_object(jwt.substr(0, first));
  if (!header) return fail(v, Reason::malformed, "the header is not a base64url JSON object");
  auto payload = decode_object(jwt.substr(first + 1, second - first - 1));
  if (!payload) return fail(v, Reason::malformed, "the payload is not a base64url JSON object");
  auto signature = jose::base64url_decode(jwt.substr(second + 1));
  if (!signature) return fail(v, Reason::malformed, "the signature is not base64url");
  v.header = std::move(*header);

  for (std::string_view refused : kRefusedHeaders)
    if (v.header.contains(refused))
      return fail(v, Reason::bad_header, "header member \"" + std::string(refused) + "\" is never accepted");
  auto alg = v.header.find("alg");
  if (alg == v.header.end() || !alg->is_string()) return fail(v, Reason::alg_not_allowed, "the header has no alg");
  v.alg = alg->get<std::string>().substr(0, 32);
  if (v.alg == "none" || v.alg.empty()) return fail(v, Reason::alg_not_allowed, "unsigned tokens are never accepted");
  if (v.alg.starts_with("HS"))
    return fail(v, Reason::alg_not_allowed, "HMAC algorithms are never accepted: only the token's keys sign");
  auto kid = v.header.find("kid");
  if (kid == v.header.end() || !kid->is_string()) return fail(v, Reason::bad_header, "the header has no kid");
  const std::string kid_text = kid->get<std::string>();
  v.key = v.view->find(kid_text);
  // A tls key is in no JWKS and signs digests its clients chose: never a JWT's key.
  if (v.key != nullptr && v.key->usage == config::Usage::tls) v.key = nullptr;
  if (v.key == nullptr) {
    // A kid of the right shape that is not here may be a key retired since; say so plainly.
    return fail(v, Reason::unknown_kid, "no published key has kid \"" + kid_text.substr(0, 64) + "\"");
  }
  if (v.key->schedule.state == keyring::KeyState::pending)
    return fail(v, Reason::pending_kid, "key " + v.key->kid + " is prepublished and has never signed");
  if (v.alg != name(v.key->algorithm))
    return fail(v, Reason::alg_not_allowed,
                "alg \"" + v.alg + "\" is not the algorithm of key " + v.key->kid + " (" + std::string(name(v.key->algorithm)) + ")");
  if (!v.key->signer->verify(as_bytes(jwt.substr(0, second)), *signature))
    return fail(v, Reason::bad_signature, "the signature is not key " + v.key->kid + "'s");
  v.claims = std::move(*payload);

  Claims& c = v.facts;
  // What names the token comes first: a revocation needs it and nothing else.
  if (!read_string(v.claims, "iss", c.iss)) return fail(v, Reason::missing_claim, "no string iss");
  if (!read_string(v.claims, "jti", c.jti) || c.jti.empty()) return fail(v, Reason::missing_claim, "no string jti");
  if (!read_time(v.claims, "exp", c.exp)) return fail(v, Reason::missing_claim, "no exp (unix seconds)");
  read_status(v.claims, c);
  if (!rules.full) return v;
  if (!read_string(v.claims, "sub", c.sub)) return fail(v, Reason::missing_claim, "no string sub");
  if (!read_audience(v.claims, c.aud)) return fail(v, Reason::missing_claim, "no aud (a string or strings)");
  if (!read_time(v.claims, "nbf", c.nbf)) return fail(v, Reason::missing_claim, "no nbf (unix seconds)");
  if (!read_time(v.claims, "iat", c.iat)) return fail(v, Reason::missing_claim, "no iat (unix seconds)");
  if (rules.issues && !rules.issues(c.iss, v.key->keyset))
    return fail(v, Reason::wrong_issuer,
                "no client issues JWTs for iss \"" + c.iss.substr(0, 256) + "\" with keyset " + v.key->keyset);
  if (rules.audience && std::find(c.aud.begin(), c.aud.end(), *rules.audience) == c.aud.end())
    return fail(v, Reason::wrong_audience, "the token is not for \"" + rules.audience->substr(0, 256) + "\"");
  if (rules.now >= c.exp + rules.tolerance)
    return fail(v, Reason::expired, "expired " + std::to_string(rules.now - c.exp) + " s ago");
  if (c.nbf > rules.now + rules.tolerance || c.iat > rules.now + rules.tolerance)
    return fail(v, Reason::not_yet_valid, "not valid for another " + std::to_string(std::max(c.nbf, c.iat) - rules.now) + " s");
  return v;
}

}  // namespace hsmsignd::validation
