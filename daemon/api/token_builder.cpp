#include "api/token_builder.h"

#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "hsmsignd/bytes.h"
#include "common/json_writer.h"
#include "api/requests.h"
#include "jose/base64url.h"

namespace hsmsignd::api {

std::string jwt_header(Algorithm alg, std::string_view kid, std::string_view typ) {
  std::string h;
  JsonObjectWriter(h).string("alg", name(alg)).string("kid", kid).string("typ", typ).close();
  return h;
}

std::string jws_header(Algorithm alg, std::string_view kid, const std::optional<std::string>& typ,
                       const std::optional<std::string>& cty) {
  nlohmann::ordered_json h = {{"alg", name(alg)}, {"kid", kid}};
  if (typ) h["typ"] = *typ;
  if (cty) h["cty"] = *cty;
  return h.dump();
}

JsonObjectWriter& write_audience(JsonObjectWriter& w, const JwtClaims& c) {
  return c.aud_is_array ? w.strings("aud", c.aud) : w.string("aud", c.aud.front());
}

std::string jwt_payload(const JwtClaims& c) {
  std::string p;
  p.reserve(256);
  JsonObjectWriter w(p);
  w.string("iss", c.iss).string("sub", c.sub);
  write_audience(w, c);
  w.number("iat", c.iat).number("nbf", c.iat).number("exp", c.exp).string("jti", c.jti);
  if (c.status_idx >= 0) {
    std::string entry;
    JsonObjectWriter(entry).number("idx", c.status_idx).string("uri", c.status_uri).close();
    std::string status;
    JsonObjectWriter(status).json("status_list", entry).close();
    w.json("status", status);
  }
  if (c.extra) {
    for (const auto& [key, value] : c.extra->items()) {
      // A private claim never replaces a registered one (parse_jwt_request refuses them already).
      if (std::find(std::begin(kRegisteredClaims), std::end(kRegisteredClaims), key) == std::end(kRegisteredClaims))
        w.json(key, value.dump());
    }
  }
  w.close();
  return p;
}

std::string new_jti() {
  std::uint8_t bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return jose::base64url_encode(ByteView(bytes, sizeof bytes));
}

}  // namespace hsmsignd::api
