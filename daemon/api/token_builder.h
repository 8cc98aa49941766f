// The JOSE headers and JWT claims the daemon writes. Only the daemon writes the header and the
// registered claims; a client's private claims follow them and can never replace them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/json_writer.h"
#include "hsmsignd/algorithm.h"

namespace hsmsignd::api {

struct JwtClaims {
  std::string iss, sub;
  std::vector<std::string> aud;
  bool aud_is_array = false;
  std::int64_t iat = 0, exp = 0;  // nbf = iat
  std::string jti;
  const nlohmann::json* extra = nullptr;  // private claims, already checked
  std::string status_uri{};               // the Token Status List entry, when status_idx >= 0
  std::int64_t status_idx = -1;
};

std::string jwt_header(Algorithm alg, std::string_view kid, std::string_view typ);
std::string jwt_payload(const JwtClaims& claims);
// "aud": one string, or an array when the request gave one.
JsonObjectWriter& write_audience(JsonObjectWriter& w, const JwtClaims& claims);
std::string jws_header(Algorithm alg, std::string_view kid, const std::optional<std::string>& typ,
                       const std::optional<std::string>& cty);

// A fresh JWT ID: 128 random bits from OpenSSL's DRBG, base64url.
std::string new_jti();

}  // namespace hsmsignd::api
