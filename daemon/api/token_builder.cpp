#include "api/token_builder.h"

#include <openssl/rand.h>

#include <stdexcept>

#include "hsmsignd/bytes.h"
#include "jose/base64url.h"

namespace hsmsignd::api {

std::string jwt_header(Algorithm alg, std::string_view kid, std::string_view typ) {
  nlohmann::ordered_json h = {{"alg", name(alg)}, {"kid", kid}, {"typ", typ}};
  return h.dump();
}

std::string jws_header(Algorithm alg, std::string_view kid, const std::optional<std::string>& typ,
                       const std::optional<std::string>& cty) {
  nlohmann::ordered_json h = {{"alg", name(alg)}, {"kid", kid}};
  if (typ) h["typ"] = *typ;
  if (cty) h["cty"] = *cty;
  return h.dump();
}

std::string jwt_payload(const JwtClaims& c) {
  nlohmann::ordered_json p;
  p["iss"] = c.iss;
  p["sub"] = c.sub;
  if (c.aud_is_array)
    p["aud"] = c.aud;
  else
    p["aud"] = c.aud.front();
  p["iat"] = c.iat;
  p["nbf"] = c.iat;
  p["exp"] = c.exp;
  p["jti"] = c.jti;
  if (c.extra)
    for (const auto& [key, value] : c.extra->items())
      if (!p.contains(key)) p[key] = value;  // a private claim never replaces a registered one
  return p.dump();
}

std::string new_jti() {
  std::uint8_t bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return jose::base64url_encode(ByteView(bytes, sizeof bytes));
}

}  // namespace hsmsignd::api
