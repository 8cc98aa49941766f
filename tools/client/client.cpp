// The typed calls: each builds its JSON body, makes one exchange and checks the answer against
// docs/api.md. Every entry point catches what the standard library or the JSON library could throw
// (bad_alloc, invalid UTF-8 on dump), so that nothing crosses into a host such as an OpenSSL provider.
#include <cstdlib>
#include <exception>
#include <new>
#include <optional>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "hsmsignd/client.h"
#include "http_exchange.h"
#include "jose/base64url.h"

namespace hsmsignd::client {

using detail::make_error;
using nlohmann::json;

std::string default_socket() {
  const char* env = std::getenv("HSMSIGND_SOCKET");
  return env && *env ? env : "/run/hsmsignd/sign.sock";
}

std::string_view name(Hash h) {
  switch (h) {
    case Hash::sha256: return "SHA-256";
    case Hash::sha384: return "SHA-384";
    case Hash::sha512: return "SHA-512";
  }
  return "";
}

std::string_view name(Padding p) { return p == Padding::pss ? "pss" : "pkcs1"; }

std::size_t digest_size(Hash h) {
  switch (h) {
    case Hash::sha256: return 32;
    case Hash::sha384: return 48;
    case Hash::sha512: return 64;
  }
  return 0;
}

namespace {

// The reason a body is not what the route documents; empty when it is.
struct Reader {
  const json& object;
  std::string problem;

  const json* member(const char* key, bool required) {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
      if (required && problem.empty()) problem = std::string("no member \"") + key + "\"";
      return nullptr;
    }
    return &*it;
  }
  std::string text(const char* key, bool required = true) {
    const json* v = member(key, required);
    if (v && v->is_string()) return v->get<std::string>();
    if (v && problem.empty()) problem = std::string("\"") + key + "\" is not a string";
    return {};
  }
  std::int64_t integer(const char* key) {
    const json* v = member(key, true);
    if (v && v->is_number_integer()) return v->get<std::int64_t>();
    if (v && problem.empty()) problem = std::string("\"") + key + "\" is not an integer";
    return 0;
  }
  Bytes bytes(const char* key, bool required = true) {
    const std::string encoded = text(key, required);
    if (encoded.empty()) return {};
    auto decoded = jose::base64url_decode(encoded);
    if (!decoded && problem.empty()) problem = std::string("\"") + key + "\" is not unpadded base64url";
    return decoded ? std::move(*decoded) : Bytes{};
  }
};

Error not_documented(std::string_view target, const std::string& why) {
  return make_error(Error::Kind::protocol, "the answer to " + std::string(target) + " is not as docs/api.md has it: " + why);
}

// The daemon's error body, {"error": code, "message": text}; anything else is kept as the message.
Error refusal(const Response& r) {
  Error e = make_error(Error::Kind::refused, {});
  e.status = r.status;
  e.retry_after = r.retry_after;
  const json body = json::parse(r.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    e.code = body["error"].get<std::string>();
    if (body.contains("message") && body["message"].is_string()) e.message = body["message"].get<std::string>();
  } else {
    e.message = r.body.substr(0, 200);
  }
  return e;
}

Error out_of_memory() { return make_error(Error::Kind::io, "out of memory"); }

// A request's JSON body: `fill` writes its members, or says why the request cannot be sent.
template <class Fill>
Result<std::string> json_body(std::string_view route, Fill&& fill) {
  try {
    json j = json::object();
    if (const std::optional<std::string> why = fill(j)) return make_error(Error::Kind::protocol, *why + "; nothing was sent");
    return j.dump();  // strict: a string that is not UTF-8 throws, and the daemon would refuse it anyway
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception&) {
    return make_error(Error::Kind::protocol, "the request to " + std::string(route) +
                                                 " holds a string that is not UTF-8; nothing was sent");
  }
}

}  // namespace

Client::Client(Options options) : options_(std::move(options)) {}

template <class T, class Parse>
Result<T> Client::call(std::string_view method, std::string_view target, std::string_view body, Parse&& parse) const {
  try {
    auto answer = detail::exchange(options_, method, target, body);
    if (!answer) return answer.error();
    if (answer->status >= 400) return refusal(*answer);
    if (answer->status != 200)
      return not_documented(target, "status " + std::to_string(answer->status) + " where 200 was expected");
    const json parsed = json::parse(answer->body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) return not_documented(target, "the body is not a JSON object");
    Reader reader{parsed, {}};
    T value = parse(reader, *answer);
    if (!reader.problem.empty()) return not_documented(target, reader.problem);
    return value;
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception& e) {
    return make_error(Error::Kind::protocol, std::string(target) + ": " + e.what());
  }
}

Result<Jwt> Client::issue_jwt(const JwtRequest& request) const {
  const auto body = json_body("/v1/jwt", [&](json& j) -> std::optional<std::string> {
    j["sub"] = request.sub;
    // The token keeps the form asked for: one audience as a string, more as an array.
    if (request.aud.size() == 1) j["aud"] = request.aud.front();
    if (request.aud.size() > 1) j["aud"] = request.aud;
    if (request.ttl) j["ttl"] = *request.ttl;
    if (!request.keyset.empty()) j["keyset"] = request.keyset;
    if (!request.typ.empty()) j["typ"] = request.typ;
    if (!request.claims_json.empty()) {
      json claims = json::parse(request.claims_json, nullptr, false);
      if (claims.is_discarded() || !claims.is_object()) return "claims_json is not a JSON object";
      j["claims"] = std::move(claims);
    }
    return std::nullopt;
  });
  if (!body) return body.error();
  return call<Jwt>("POST", "/v1/jwt", *body, [](Reader& r, const Response&) {
    Jwt t;
    t.jwt = r.text("jwt");
    t.alg = r.text("alg");
    t.kid = r.text("kid");
    t.jti = r.text("jti");
    t.iat = r.integer("iat");
    t.exp = r.integer("exp");
    return t;
  });
}

Result<Signature> Client::sign(const SignRequest& request) const {
  const auto body = json_body("/v1/sign", [&](json& j) -> std::optional<std::string> {
    j["digest"] = jose::base64url_encode(request.digest);
    if (!request.keyset.empty()) j["keyset"] = request.keyset;
    if (!request.kid.empty()) j["kid"] = request.kid;
    if (request.hash) j["hash"] = name(*request.hash);
    if (request.padding) j["padding"] = name(*request.padding);
    return std::nullopt;
  });
  if (!body) return body.error();
  return call<Signature>("POST", "/v1/sign", *body, [](Reader& r, const Response&) {
    Signature s;
    s.signature = r.bytes("signature");
    if (s.signature.empty() && r.problem.empty()) r.problem = "\"signature\" is empty";
    s.alg = r.text("alg");
    s.kid = r.text("kid");
    return s;
  });
}

Result<std::vector<KeyInfo>> Client::keys() const {
  return call<std::vector<KeyInfo>>("GET", "/v1/keys", {}, [](Reader& r, const Response&) {
    std::vector<KeyInfo> keys;
    const json* list = r.member("keys", true);
    if (list && !list->is_array()) r.problem = "\"keys\" is not an array";
    if (!list || !r.problem.empty()) return keys;
    for (const json& k : *list) {
      if (!k.is_object()) {
        r.problem = "an entry of \"keys\" is not an object";
        break;
      }
      Reader kr{k, {}};
      KeyInfo info;
      info.kid = kr.text("kid");
      info.keyset = kr.text("keyset");
      info.alg = kr.text("alg");
      info.state = kr.text("state");
      info.created = kr.text("created");
      info.activates = kr.text("activates");
      // Absent for some keys, and from daemons older than the members: tolerated.
      info.deactivates = kr.text("deactivates", false);
      info.retires = kr.text("retires", false);
      info.usage = kr.text("usage", false);
      info.spki = kr.bytes("spki", false);
      if (!kr.problem.empty()) {
        r.problem = "a key: " + kr.problem;
        break;
      }
      keys.push_back(std::move(info));
    }
    return keys;
  });
}

Result<std::string> Client::jwks() const {
  return call<std::string>("GET", "/.well-known/jwks.json", {}, [](Reader& r, const Response& answer) {
    const json* keys = r.member("keys", true);
    if (keys && !keys->is_array()) r.problem = "\"keys\" is not an array";
    return answer.body;  // as served: its bytes are what the ETag and the [jwks] file hold
  });
}

Result<Response> Client::request(std::string_view method, std::string_view target, std::string_view body) const {
  try {
    return detail::exchange(options_, method, target, body);
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception& e) {
    return make_error(Error::Kind::io, e.what());
  }
}

}  // namespace hsmsignd::client
