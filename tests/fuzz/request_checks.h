// The token-free part of handling a request body, as the issuer API does it (parse_object, then
// parse_{jwt,jws,sign}_request, then the policy, then the header and claims it would sign), with the
// invariants each step must keep. Shared by fuzz_json_request and fuzz_http_request.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/json_body.h"
#include "api/requests.h"
#include "api/token_builder.h"
#include "fuzz_support.h"
#include "fuzz_test_config.h"
#include "known_findings.h"
#include "jose/base64url.h"
#include "policy/policy.h"

namespace hsmsignd::fuzz {

// What a strict reading of `text` should conclude, computed with a SAX pass of our own rather than
// the daemon's callback: syntax, the deepest nesting, duplicate names in one object, the top type.
struct JsonShape {
  bool syntax_ok = false;
  bool top_is_object = false;
  bool duplicate = false;
  bool duplicate_named = false;  // a duplicate other than the empty name ""
  int max_depth = 0;

  bool acceptable() const { return syntax_ok && top_is_object && !duplicate && max_depth <= 16; }
};

class ShapeSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit ShapeSax(JsonShape& shape) : s_(shape) {}
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    open(true);
    return true;
  }
  bool key(string_t& k) override {
    if (!names_.back().insert(k).second) {
      s_.duplicate = true;
      if (!k.empty()) s_.duplicate_named = true;
    }
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    open(false);
    return true;
  }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool value() { return true; }
  void open(bool object) {
    if (names_.empty() && !started_) s_.top_is_object = object;
    started_ = true;
    names_.emplace_back();
    s_.max_depth = std::max(s_.max_depth, static_cast<int>(names_.size()));
  }
  bool close() {
    names_.pop_back();
    return true;
  }
  JsonShape& s_;
  std::vector<std::set<std::string>> names_;
  bool started_ = false;
};

inline JsonShape json_shape(std::string_view text) {
  JsonShape shape;
  ShapeSax sax(shape);
  shape.syntax_ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json, true);
  return shape;
}

// parse_object must accept exactly the bodies the independent reading accepts, and what it accepts
// must be valid UTF-8 and survive a round trip. A raw NUL byte is never valid JSON (control characters
// must be escaped inside strings, and only blanks may stand outside them), but nlohmann's lexer, which
// the SAX pass shares, stops at one: hence the separate test for it.
inline Expected<nlohmann::json, api::ApiError> parse_object_tolerating_known(std::string_view text) {
  if (!kKnownNumberOverflowEscapes) return api::parse_object(text);
  try {
    return api::parse_object(text);
  } catch (const nlohmann::json::out_of_range& e) {  // finding 003: the refusal it should have been
    return api::ApiError::bad_request(std::string("finding 003: ") + e.what());
  }
}

inline Expected<nlohmann::json, api::ApiError> checked_parse_object(std::string_view text) {
  auto parsed = parse_object_tolerating_known(text);
  const std::size_t nul = text.find('\0');
  const JsonShape shape = json_shape(text);  // stops at a NUL, like the daemon's parser
  const bool acceptable = shape.acceptable() && nul == std::string_view::npos;
  if (!parsed) {
    check_api_error(parsed.error(), 400);
    FUZZ_CHECK(!acceptable, "parse_object refused a strict, shallow, duplicate-free object: " + parsed.error().message);
    return parsed;
  }
  // Finding 001: while it is tolerated, a body may also be accepted for what stands before its NUL.
  bool tolerated = kKnownNulEndsJsonBody && nul != std::string_view::npos && shape.acceptable();
  // Finding 004: while it is tolerated, a duplicate of the empty name "" may go through.
  if (kKnownEmptyNameDuplicates && shape.duplicate && !shape.duplicate_named) {
    JsonShape without = shape;
    without.duplicate = false;
    tolerated = tolerated || (without.acceptable() && (nul == std::string_view::npos || kKnownNulEndsJsonBody));
  }
  FUZZ_CHECK(acceptable || tolerated, "parse_object accepted a body a strict reading refuses (syntax " +
                                          std::to_string(shape.syntax_ok) + ", object " + std::to_string(shape.top_is_object) +
                                          ", duplicate " + std::to_string(shape.duplicate) + ", depth " +
                                          std::to_string(shape.max_depth) + ", NUL at " +
                                          (nul == std::string_view::npos ? std::string("none") : std::to_string(nul)) + ")");
  FUZZ_CHECK(parsed->is_object(), "parse_object returned a non-object");
  FUZZ_CHECK(is_utf8(text.substr(0, nul)), "parse_object accepted invalid UTF-8");
  const std::string again = parsed->dump();  // throws type_error 316 on invalid UTF-8: a finding
  auto reparsed = parse_object_tolerating_known(again);
  FUZZ_CHECK(reparsed && *reparsed == *parsed, "parse_object(dump(x)) != x");
  return parsed;
}

inline bool only_members(const nlohmann::json& body, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) return false;
  return true;
}

inline bool printable_media_type(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\'; });
}

inline void check_string_member(const nlohmann::json& body, const char* name, const std::optional<std::string>& got,
                                 std::size_t max) {
  if (!body.contains(name)) {
    FUZZ_CHECK(!got, std::string(name) + " set without being sent");
    return;
  }
  FUZZ_CHECK(got && body[name].is_string() && *got == body[name].get<std::string>(), std::string(name) + " not as sent");
  FUZZ_CHECK(!got->empty() && got->size() <= max, std::string(name) + " out of bounds accepted");
}

inline void check_base64url_member(const nlohmann::json& body, const char* name, const Bytes& got) {
  FUZZ_CHECK(body.contains(name) && body[name].is_string(), std::string(name) + " accepted without a string");
  FUZZ_CHECK(jose::base64url_encode(got) == body[name].get<std::string>(),
             std::string(name) + " is not the canonical encoding of what it decoded to");
}

// The answer the handler would give without a token: an error, or 200 where the daemon would queue
// the signature.
struct Outcome {
  int status = 200;
  std::string body;
};

inline Outcome error_outcome(const api::ApiError& e) {
  check_api_error(e);
  return {e.status, e.body()};
}

// POST /v1/jwt for `client`.
inline Outcome handle_jwt(const nlohmann::json& body, const config::ClientConfig& client) {
  const auto& config = test_config();
  auto request = api::parse_jwt_request(body);
  const bool known = only_members(body, {"sub", "aud", "ttl", "keyset", "typ", "claims"});
  if (!request) {
    check_api_error(request.error(), 400);
    return error_outcome(request.error());
  }
  FUZZ_CHECK(known, "a /v1/jwt body with an unknown member was accepted");
  FUZZ_CHECK(body.contains("sub") && !request->sub.empty() && request->sub.size() <= 1024, "bad sub accepted");
  FUZZ_CHECK(request->sub == body["sub"].get<std::string>(), "sub not as sent");
  if (body.contains("aud")) {
    FUZZ_CHECK(!request->aud.empty(), "aud sent but empty after parsing");
    FUZZ_CHECK(request->aud_is_array == body["aud"].is_array(), "aud form not kept");
  } else {
    FUZZ_CHECK(request->aud.empty() && !request->aud_is_array, "aud invented");
  }
  if (request->ttl) FUZZ_CHECK(*request->ttl > 0 && *request->ttl <= 1'000'000'000, "ttl out of range accepted");
  check_string_member(body, "keyset", request->keyset, 256);
  FUZZ_CHECK(printable_media_type(request->typ), "typ not printable ASCII: " + request->typ);
  FUZZ_CHECK(request->claims.is_object(), "claims not an object");
  for (const char* registered : api::kRegisteredClaims)
    FUZZ_CHECK(!request->claims.contains(registered), std::string("claims set the registered claim ") + registered);

  auto grant = policy::grant_jwt(config, client, *request);
  if (!grant) {
    const int s = grant.error().status;
    FUZZ_CHECK(s == 400 || s == 403 || s == 404, "grant_jwt error status " + std::to_string(s));
    return error_outcome(grant.error());
  }
  FUZZ_CHECK(grant->keyset != nullptr, "grant without a keyset");
  FUZZ_CHECK(std::count(client.keysets.begin(), client.keysets.end(), grant->keyset->name) == 1,
             "granted a keyset the client does not have");
  FUZZ_CHECK(grant->ttl.count() > 0 && grant->ttl <= client.max_ttl, "granted a ttl above max_ttl");
  FUZZ_CHECK(!grant->aud.empty(), "granted no audience");
  for (const auto& a : grant->aud)
    FUZZ_CHECK(std::count(client.audiences.begin(), client.audiences.end(), a) == 1, "granted a foreign audience " + a);

  // What would be signed: the daemon's header and claims, whatever the client's private claims say.
  const std::string header = api::jwt_header(grant->keyset->algorithm, "kid-1", request->typ);
  auto h = nlohmann::json::parse(header);
  FUZZ_CHECK(h.size() == 3 && h["alg"] == name(grant->keyset->algorithm) && h["kid"] == "kid-1" && h["typ"] == request->typ,
             "unexpected JWT header " + header);
  api::JwtClaims claims;
  claims.iss = client.issuer;
  claims.sub = request->sub;
  claims.aud = grant->aud;
  claims.aud_is_array = grant->aud_is_array;
  claims.iat = 1'700'000'000;
  claims.exp = claims.iat + grant->ttl.count();
  claims.jti = "jti";
  claims.extra = &request->claims;
  const std::string payload = api::jwt_payload(claims);
  auto p = nlohmann::json::parse(payload);
  FUZZ_CHECK(p["iss"] == client.issuer && p["sub"] == request->sub && p["iat"] == claims.iat && p["nbf"] == claims.iat &&
                 p["exp"] == claims.exp && p["jti"] == "jti",
             "a registered claim is not the daemon's: " + payload);
  FUZZ_CHECK(p.size() == 7 + request->claims.size(), "private claims lost or added: " + payload);
  return {200, payload};
}

// POST /v1/jws for `client`.
inline Outcome handle_jws(const nlohmann::json& body, const config::ClientConfig& client) {
  auto request = api::parse_jws_request(body);
  const bool known = only_members(body, {"payload", "keyset", "typ", "cty"});
  if (!request) {
    check_api_error(request.error(), 400);
    return error_outcome(request.error());
  }
  FUZZ_CHECK(known, "a /v1/jws body with an unknown member was accepted");
  check_base64url_member(body, "payload", request->payload);
  check_string_member(body, "keyset", request->keyset, 256);
  check_string_member(body, "typ", request->typ, 64);
  check_string_member(body, "cty", request->cty, 64);
  if (request->typ) FUZZ_CHECK(printable_media_type(*request->typ), "typ not printable");
  if (request->cty) FUZZ_CHECK(printable_media_type(*request->cty), "cty not printable");
  auto keyset = policy::choose_keyset(test_config(), client, request->keyset, config::Operation::jws);
  if (!keyset) return error_outcome(keyset.error());
  const std::string header = api::jws_header((*keyset)->algorithm, "kid-1", request->typ, request->cty);
  auto h = nlohmann::json::parse(header);
  FUZZ_CHECK(h["alg"] == name((*keyset)->algorithm) && h.size() == 2u + (request->typ ? 1 : 0) + (request->cty ? 1 : 0),
             "unexpected JWS header " + header);
  return {200, header};
}

// POST /v1/sign for `client`.
inline Outcome handle_sign(const nlohmann::json& body, const config::ClientConfig& client) {
  auto request = api::parse_sign_request(body);
  const bool known = only_members(body, {"digest", "keyset"});
  if (!request) {
    check_api_error(request.error(), 400);
    return error_outcome(request.error());
  }
  FUZZ_CHECK(known, "a /v1/sign body with an unknown member was accepted");
  check_base64url_member(body, "digest", request->digest);
  check_string_member(body, "keyset", request->keyset, 256);
  auto keyset = policy::choose_keyset(test_config(), client, request->keyset, config::Operation::sign);
  if (!keyset) return error_outcome(keyset.error());
  return {200, "{}"};
}

}  // namespace hsmsignd::fuzz
