#include "api/requests.h"

#include <algorithm>
#include <initializer_list>
#include <string_view>

#include "jose/base64url.h"

namespace hsmsignd::api {
namespace {

constexpr std::size_t kMaxSubject = 1024;
constexpr std::size_t kMaxName = 256;

using Error = ApiError;

std::optional<Error> string_member(const nlohmann::json& body, const char* name, std::optional<std::string>& out,
                                   std::size_t max = kMaxName) {
  auto it = body.find(name);
  if (it == body.end()) return std::nullopt;
  if (!it->is_string()) return Error::bad_request(std::string("\"") + name + "\" must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.empty() || s.size() > max)
    return Error::bad_request(std::string("\"") + name + "\" must be 1 to " + std::to_string(max) + " characters");
  out = s;
  return std::nullopt;
}

// typ and cty go into the protected header; printable ASCII keeps them from smuggling anything.
std::optional<Error> media_type_member(const nlohmann::json& body, const char* name, std::optional<std::string>& out) {
  if (auto e = string_member(body, name, out, 64)) return e;
  if (out && !std::all_of(out->begin(), out->end(), [](char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\'; }))
    return Error::bad_request(std::string("\"") + name + "\" must be printable ASCII without blanks or quotes");
  return std::nullopt;
}

std::optional<Error> base64url_member(const nlohmann::json& body, const char* name, Bytes& out) {
  auto it = body.find(name);
  if (it == body.end()) return Error::bad_request(std::string("\"") + name + "\" is required");
  if (!it->is_string()) return Error::bad_request(std::string("\"") + name + "\" must be a base64url string");
  auto decoded = jose::base64url_decode(it->get_ref<const std::string&>());
  if (!decoded) return Error::bad_request(std::string("\"") + name + "\" is not unpadded base64url");
  out = std::move(*decoded);
  return std::nullopt;
}

// One of a few names (a hash, a padding), read by `parse`.
template <class T>
std::optional<Error> name_member(const nlohmann::json& body, const char* name, std::optional<T> (*parse)(std::string_view),
                                 std::string_view allowed, std::optional<T>& out) {
  std::optional<std::string> text;
  if (auto e = string_member(body, name, text)) return e;
  if (!text) return std::nullopt;
  out = parse(*text);
  if (!out) return Error::bad_request(std::string("\"") + name + "\" must be " + std::string(allowed));
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> only_members(const nlohmann::json& body, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return ApiError::bad_request("unknown member \"" + key + "\"");
  return std::nullopt;
}

Expected<JwtRequest, ApiError> parse_jwt_request(const nlohmann::json& body) {
  if (auto e = only_members(body, {"sub", "aud", "ttl", "keyset", "typ", "claims"})) return *e;
  JwtRequest r;
  std::optional<std::string> sub;
  if (auto e = string_member(body, "sub", sub, kMaxSubject)) return *e;
  if (!sub) return Error::bad_request("\"sub\" is required");
  r.sub = std::move(*sub);

  if (auto it = body.find("aud"); it != body.end()) {
    if (it->is_string()) {
      r.aud.push_back(it->get<std::string>());
    } else if (it->is_array() && !it->empty()) {
      r.aud_is_array = true;
      for (const auto& a : *it) {
        if (!a.is_string()) return Error::bad_request("\"aud\" must be a string or an array of strings");
        r.aud.push_back(a.get<std::string>());
      }
    } else {
      return Error::bad_request("\"aud\" must be a string or a non-empty array of strings");
    }
  }

  if (auto it = body.find("ttl"); it != body.end()) {
    // Integers only: 300.5, true and "300" are refused rather than rounded or converted.
    if (!it->is_number_integer()) return Error::bad_request("\"ttl\" must be a whole number of seconds");
    if (it->is_number_unsigned() && it->get<unsigned long long>() > 1'000'000'000ULL)
      return Error::bad_request("\"ttl\" is out of range");
    const long long ttl = it->get<long long>();
    if (ttl <= 0) return Error::bad_request("\"ttl\" must be positive");
    r.ttl = ttl;
  }

  if (auto e = string_member(body, "keyset", r.keyset)) return *e;
  std::optional<std::string> typ;
  if (auto e = media_type_member(body, "typ", typ)) return *e;
  if (typ) r.typ = std::move(*typ);

  if (auto it = body.find("claims"); it != body.end()) {
    if (!it->is_object()) return Error::bad_request("\"claims\" must be a JSON object");
    for (const char* registered : kRegisteredClaims)
      if (it->contains(registered))
        return Error::bad_request(std::string("\"claims\" may not set the registered claim \"") + registered + "\"");
    r.claims = *it;
  }
  return r;
}

Expected<JwsRequest, ApiError> parse_jws_request(const nlohmann::json& body) {
  if (auto e = only_members(body, {"payload", "keyset", "typ", "cty"})) return *e;
  JwsRequest r;
  if (auto e = base64url_member(body, "payload", r.payload)) return *e;
  if (auto e = string_member(body, "keyset", r.keyset)) return *e;
  if (auto e = media_type_member(body, "typ", r.typ)) return *e;
  if (auto e = media_type_member(body, "cty", r.cty)) return *e;
  return r;
}

Expected<SignRequest, ApiError> parse_sign_request(const nlohmann::json& body) {
  if (auto e = only_members(body, {"digest", "keyset", "kid", "hash", "padding"})) return *e;
  SignRequest r;
  if (auto e = base64url_member(body, "digest", r.digest)) return *e;
  if (auto e = string_member(body, "keyset", r.keyset)) return *e;
  if (auto e = string_member(body, "kid", r.kid)) return *e;
  if (auto e = name_member(body, "hash", parse_hash, "\"SHA-256\", \"SHA-384\" or \"SHA-512\"", r.hash)) return *e;
  if (auto e = name_member(body, "padding", parse_padding, "\"pkcs1\" or \"pss\"", r.padding)) return *e;
  return r;
}

}  // namespace hsmsignd::api
