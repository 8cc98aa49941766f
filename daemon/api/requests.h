// The bodies of POST /v1/jwt, /v1/jws and /v1/sign, checked member by member: unknown members, wrong
// types and impossible values are refused with a message naming the member.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "digest_scheme.h"
#include "hsmsignd/bytes.h"
#include "hsmsignd/result.h"

namespace hsmsignd::api {

// The claims only the daemon writes; `claims` may not set them. "status" holds the token's Token Status
// List entry: a client that could write one could name another token's bit, and have it set by revoking
// its own token.
inline constexpr const char* kRegisteredClaims[] = {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "status"};

struct JwtRequest {
  std::string sub;
  std::vector<std::string> aud;  // empty: the client's default audience
  bool aud_is_array = false;     // keep the form the client asked for
  std::optional<long long> ttl;  // seconds
  std::optional<std::string> keyset;
  std::string typ = "JWT";
  nlohmann::json claims = nlohmann::json::object();
};

struct JwsRequest {
  Bytes payload;
  std::optional<std::string> keyset;
  std::optional<std::string> typ;
  std::optional<std::string> cty;
};

struct SignRequest {
  Bytes digest;
  std::optional<std::string> keyset;
  std::optional<std::string> kid;       // sign with this key rather than the keyset's active one
  std::optional<Hash> hash;             // absent: the algorithm's own
  std::optional<Padding> padding;       // RSA only; absent: the algorithm's own
};

// Refuses members outside `allowed`, naming the first.
std::optional<ApiError> only_members(const nlohmann::json& body, std::initializer_list<std::string_view> allowed);

Expected<JwtRequest, ApiError> parse_jwt_request(const nlohmann::json& body);
Expected<JwsRequest, ApiError> parse_jws_request(const nlohmann::json& body);
Expected<SignRequest, ApiError> parse_sign_request(const nlohmann::json& body);

}  // namespace hsmsignd::api
