#include "jose/jwk.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "crypto/digest.h"
#include "crypto/evp_key.h"
#include "jose/base64url.h"

namespace hsmsignd::jose {
namespace {

std::string_view curve_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::ES256: return "P-256";
    case Algorithm::ES384: return "P-384";
    case Algorithm::EdDSA: return "Ed25519";
    default: return "";
  }
}

std::string_view kty_name(KeyType type) {
  switch (type) {
    case KeyType::EC: return "EC";
    case KeyType::RSA: return "RSA";
    case KeyType::OKP: return "OKP";
  }
  return "";
}

ByteView strip_leading_zeros(ByteView be) {
  std::size_t i = 0;
  while (i < be.size() && be[i] == 0) ++i;
  return be.subspan(i);
}

// The members of `key` as base64url, in the order RFC 7638 sorts them: EC {x, y}, RSA {e, n}, OKP {x}.
struct EncodedKey {
  std::string first;
  std::string second;
};

EncodedKey encode_members(const PublicKey& key) {
  switch (key_type(key.algorithm)) {
    case KeyType::EC: {
      const std::size_t field = ec_field_size(key.algorithm);
      if (key.point.size() != 1 + 2 * field || key.point[0] != 0x04)
        throw std::invalid_argument("EC public key is not an uncompressed point of its curve");
      const ByteView point(key.point);
      return {base64url_encode(point.subspan(1, field)), base64url_encode(point.subspan(1 + field, field))};
    }
    case KeyType::RSA: {
      const ByteView e = strip_leading_zeros(key.exponent), n = strip_leading_zeros(key.modulus);
      if (e.empty() || n.empty()) throw std::invalid_argument("RSA public key has an empty modulus or exponent");
      return {base64url_encode(e), base64url_encode(n)};
    }
    case KeyType::OKP:
      if (key.point.size() != 32) throw std::invalid_argument("Ed25519 public key is not 32 bytes");
      return {base64url_encode(key.point), {}};
  }
  throw std::invalid_argument("unknown key type");
}

JoseError jwk_error(std::string message) { return JoseError{"JWK: " + std::move(message)}; }

// A required string member, strictly base64url-decoded.
Expected<Bytes, JoseError> decode_member(const nlohmann::json& jwk, const char* member) {
  const auto it = jwk.find(member);
  if (it == jwk.end() || !it->is_string())
    return jwk_error(std::string("member \"") + member + "\" is missing or not a string");
  auto bytes = base64url_decode(it->get_ref<const std::string&>());
  if (!bytes) return jwk_error(std::string("member \"") + member + "\" is not unpadded base64url");
  return std::move(*bytes);
}

bool member_equals(const nlohmann::json& jwk, const char* member, std::string_view expected) {
  const auto it = jwk.find(member);
  return it != jwk.end() && it->is_string() && it->get_ref<const std::string&>() == expected;
}

}  // namespace

nlohmann::json to_jwk(const PublicKey& key) {
  auto [first, second] = encode_members(key);
  switch (key_type(key.algorithm)) {
    case KeyType::EC:
      return {{"kty", "EC"}, {"crv", curve_name(key.algorithm)}, {"x", std::move(first)}, {"y", std::move(second)}};
    case KeyType::RSA: return {{"kty", "RSA"}, {"n", std::move(second)}, {"e", std::move(first)}};
    case KeyType::OKP: return {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", std::move(first)}};
  }
  throw std::invalid_argument("unknown key type");
}

nlohmann::json to_published_jwk(const PublicKey& key, std::string_view kid) {
  nlohmann::json jwk = to_jwk(key);
  jwk["kid"] = kid;
  jwk["alg"] = name(key.algorithm);
  jwk["use"] = "sig";
  return jwk;
}

std::string thumbprint(const PublicKey& key) {
  // RFC 7638 §3.2: the required members only, sorted, no whitespace. Written by hand rather than with
  // nlohmann::json::dump so the byte layout does not depend on a library's formatting choices.
  const auto [first, second] = encode_members(key);
  std::string canonical;
  canonical.reserve(64 + first.size() + second.size());
  switch (key_type(key.algorithm)) {
    case KeyType::EC:
      canonical.append(R"({"crv":")").append(curve_name(key.algorithm)).append(R"(","kty":"EC","x":")");
      canonical.append(first).append(R"(","y":")").append(second).append(R"("})");
      break;
    case KeyType::RSA:
      canonical.append(R"({"e":")").append(first).append(R"(","kty":"RSA","n":")").append(second).append(R"("})");
      break;
    case KeyType::OKP:
      canonical.append(R"({"crv":"Ed25519","kty":"OKP","x":")").append(first).append(R"("})");
      break;
  }
  return base64url_encode(crypto::sha256(as_bytes(canonical)));
}

Expected<PublicKey, JoseError> from_jwk(const nlohmann::json& jwk, Algorithm algorithm) {
  if (!jwk.is_object()) return jwk_error("not a JSON object");

  const std::string_view kty = kty_name(key_type(algorithm));
  if (!member_equals(jwk, "kty", kty))
    return jwk_error("\"kty\" must be \"" + std::string(kty) + "\" for " + std::string(name(algorithm)));
  if (jwk.contains("alg") && !member_equals(jwk, "alg", name(algorithm)))
    return jwk_error("\"alg\" does not name " + std::string(name(algorithm)));
  // A private JWK handed to a public-key parser is a leak waiting to happen: refuse it loudly.
  for (const char* secret : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
    if (jwk.contains(secret)) return jwk_error(std::string("private member \"") + secret + "\" present");

  PublicKey key{algorithm, {}, {}, {}};
  switch (key_type(algorithm)) {
    case KeyType::EC: {
      if (!member_equals(jwk, "crv", curve_name(algorithm)))
        return jwk_error("\"crv\" must be \"" + std::string(curve_name(algorithm)) + "\"");
      auto x = decode_member(jwk, "x");
      if (!x) return x.error();
      auto y = decode_member(jwk, "y");
      if (!y) return y.error();
      const std::size_t field = ec_field_size(algorithm);
      // RFC 7518 §6.2.1.2: the coordinates are exactly the field size, leading zeros included.
      if (x->size() != field || y->size() != field)
        return jwk_error("\"x\" and \"y\" must be " + std::to_string(field) + " bytes");
      key.point.reserve(1 + 2 * field);
      key.point.push_back(0x04);
      key.point.insert(key.point.end(), x->begin(), x->end());
      key.point.insert(key.point.end(), y->begin(), y->end());
      break;
    }
    case KeyType::RSA: {
      auto n = decode_member(jwk, "n");
      if (!n) return n.error();
      auto e = decode_member(jwk, "e");
      if (!e) return e.error();
      const ByteView n_digits = strip_leading_zeros(*n), e_digits = strip_leading_zeros(*e);
      key.modulus.assign(n_digits.begin(), n_digits.end());
      key.exponent.assign(e_digits.begin(), e_digits.end());
      break;
    }
    case KeyType::OKP: {
      if (!member_equals(jwk, "crv", "Ed25519")) return jwk_error("\"crv\" must be \"Ed25519\"");
      auto x = decode_member(jwk, "x");
      if (!x) return x.error();
      if (x->size() != 32) return jwk_error("Ed25519 \"x\" must be 32 bytes");
      key.point = std::move(*x);
      break;
    }
  }

  // The same checks the key would meet when used: refuse here, with the reason, rather than at the
  // first verification.
  if (auto usable = crypto::to_evp(key); !usable) return jwk_error(usable.error().message);
  return key;
}

}  // namespace hsmsignd::jose
