#include "jose/jwk.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "crypto/digest.h"
#include "crypto/evp_key.h"
#include "jose/base64url.h"
#include "rfc_vectors.h"
#include "software_keys.h"
#include "test_support.h"

namespace hsmsignd::jose {
namespace {

using nlohmann::json;
namespace rfc = test::rfc;

constexpr Algorithm kAll[] = {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                              Algorithm::EdDSA};

json rfc7638_jwk() {
  // As printed in RFC 7638 §3.1, optional members included: they must not change the thumbprint.
  return {{"kty", "RSA"}, {"n", rfc::k7638N}, {"e", rfc::k7638E}, {"alg", "RS256"}, {"kid", "2011-04-29"}};
}

json rfc7515_a3_jwk() { return {{"kty", "EC"}, {"crv", "P-256"}, {"x", rfc::kA3X}, {"y", rfc::kA3Y}}; }

json rfc8037_jwk() { return {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", rfc::k8037X}}; }

TEST(Thumbprint, MatchesTheRfc7638RsaExample) {
  const auto key = from_jwk(rfc7638_jwk(), Algorithm::RS256);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(thumbprint(*key), rfc::k7638Thumbprint);

  PublicKey tampered = *key;
  tampered.modulus = test::flipped(tampered.modulus, 128);
  EXPECT_NE(thumbprint(tampered), rfc::k7638Thumbprint);
}

TEST(Thumbprint, MatchesTheRfc8037Ed25519Example) {
  const auto key = from_jwk(rfc8037_jwk(), Algorithm::EdDSA);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(thumbprint(*key), rfc::k8037Thumbprint);
  EXPECT_EQ(to_jwk(*key), rfc8037_jwk());

  PublicKey tampered = *key;
  tampered.point = test::flipped(tampered.point, 0);
  EXPECT_NE(thumbprint(tampered), rfc::k8037Thumbprint);
}

TEST(Thumbprint, EcKeyHashesTheRequiredMembersInLexicographicOrder) {
  // No EC example in RFC 7638; the canonical form is spelled out here per its §3.2 instead.
  const auto key = from_jwk(rfc7515_a3_jwk(), Algorithm::ES256);
  ASSERT_TRUE(key) << key.error().message;
  const std::string canonical =
      R"({"crv":"P-256","kty":"EC","x":")" + std::string(rfc::kA3X) + R"(","y":")" + std::string(rfc::kA3Y) + R"("})";
  EXPECT_EQ(thumbprint(*key), base64url_encode(crypto::sha256(as_bytes(canonical))));

  const std::string swapped =
      R"({"kty":"EC","crv":"P-256","x":")" + std::string(rfc::kA3X) + R"(","y":")" + std::string(rfc::kA3Y) + R"("})";
  EXPECT_NE(thumbprint(*key), base64url_encode(crypto::sha256(as_bytes(swapped))));
}

TEST(Jwk, HasThePublicMembersAndThePublishedFormAddsKidAlgAndUse) {
  const json es256 = to_jwk(test::shared_public_key(Algorithm::ES256));
  EXPECT_EQ(es256.size(), 4u);
  EXPECT_EQ(es256["kty"], "EC");
  EXPECT_EQ(es256["crv"], "P-256");
  EXPECT_EQ(es256["x"].get<std::string>().size(), 43u);  // 32 bytes
  EXPECT_EQ(es256["y"].get<std::string>().size(), 43u);

  const json es384 = to_jwk(test::shared_public_key(Algorithm::ES384));
  EXPECT_EQ(es384["crv"], "P-384");
  EXPECT_EQ(es384["x"].get<std::string>().size(), 64u);  // 48 bytes

  const json rsa = to_jwk(test::shared_public_key(Algorithm::PS256));
  EXPECT_EQ(rsa.size(), 3u);
  EXPECT_EQ(rsa["kty"], "RSA");
  EXPECT_EQ(rsa["e"], "AQAB");
  EXPECT_EQ(rsa["n"].get<std::string>().size(), 342u);  // 256 bytes

  const json okp = to_jwk(test::shared_public_key(Algorithm::EdDSA));
  EXPECT_EQ(okp.size(), 3u);
  EXPECT_EQ(okp["kty"], "OKP");
  EXPECT_EQ(okp["crv"], "Ed25519");

  const PublicKey key = test::shared_public_key(Algorithm::ES384);
  json expected = to_jwk(key);
  expected["kid"] = "2026-01-key";
  expected["alg"] = "ES384";
  expected["use"] = "sig";
  const json published = to_published_jwk(key, "2026-01-key");
  EXPECT_EQ(published, expected);
  // The published form parses back to the same key.
  EXPECT_EQ(from_jwk(published, Algorithm::ES384).value(), key);
}

TEST(Jwk, EveryKeyRoundTripsThroughItsJwk) {
  for (auto algorithm : kAll) {
    const PublicKey key = test::shared_public_key(algorithm);
    const auto parsed = from_jwk(to_jwk(key), algorithm);
    ASSERT_TRUE(parsed) << name(algorithm) << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, key) << name(algorithm);
    EXPECT_EQ(thumbprint(*parsed), thumbprint(key));
    // Tamper: a different key has a different thumbprint.
    const auto other = crypto::from_evp(test::generate_key(algorithm).get(), algorithm).value();
    EXPECT_NE(thumbprint(other), thumbprint(key)) << name(algorithm);
  }
}

TEST(Jwk, ParsingRefusesAKeyForAnotherAlgorithm) {
  EXPECT_FALSE(from_jwk(rfc7515_a3_jwk(), Algorithm::RS256));  // EC key, RSA algorithm
  EXPECT_FALSE(from_jwk(rfc7515_a3_jwk(), Algorithm::ES384));  // P-256 key, P-384 algorithm
  EXPECT_FALSE(from_jwk(rfc7638_jwk(), Algorithm::ES256));
  EXPECT_FALSE(from_jwk(rfc7638_jwk(), Algorithm::PS256));      // its "alg" says RS256
  EXPECT_FALSE(from_jwk(rfc8037_jwk(), Algorithm::ES256));

  json x25519 = rfc8037_jwk();
  x25519["crv"] = "X25519";
  EXPECT_FALSE(from_jwk(x25519, Algorithm::EdDSA));
  json no_crv = rfc7515_a3_jwk();
  no_crv.erase("crv");
  EXPECT_FALSE(from_jwk(no_crv, Algorithm::ES256));
  // The untampered keys parse.
  EXPECT_TRUE(from_jwk(rfc7515_a3_jwk(), Algorithm::ES256));
  EXPECT_TRUE(from_jwk(rfc7638_jwk(), Algorithm::RS256));
}

TEST(Jwk, ParsingRefusesMalformedMembers) {
  auto a3_with = [](const char* member, json value) {
    json jwk = rfc7515_a3_jwk();
    jwk[member] = std::move(value);
    return jwk;
  };
  const std::string x = std::string(rfc::kA3X);

  EXPECT_FALSE(from_jwk(json::array(), Algorithm::ES256));
  EXPECT_FALSE(from_jwk(json("EC"), Algorithm::ES256));
  EXPECT_FALSE(from_jwk(a3_with("x", 42), Algorithm::ES256));
  EXPECT_FALSE(from_jwk(a3_with("x", nullptr), Algorithm::ES256));
  EXPECT_FALSE(from_jwk(a3_with("x", x + "="), Algorithm::ES256));  // padded
  EXPECT_FALSE(from_jwk(a3_with("kty", 1), Algorithm::ES256));
  // Coordinates must be exactly 32 bytes, so neither a short one nor one with a leading zero passes.
  EXPECT_FALSE(from_jwk(a3_with("x", base64url_encode(Bytes(31, 1))), Algorithm::ES256));
  Bytes x_padded = test::b64u(rfc::kA3X);
  x_padded.insert(x_padded.begin(), 0);
  const auto padded = from_jwk(a3_with("x", base64url_encode(x_padded)), Algorithm::ES256);
  ASSERT_FALSE(padded);
  EXPECT_NE(padded.error().message.find("must be 32 bytes"), std::string::npos) << padded.error().message;
  // Well-formed but not on the curve.
  EXPECT_FALSE(from_jwk(a3_with("y", base64url_encode(test::flipped(test::b64u(rfc::kA3Y), 31))), Algorithm::ES256));

  json missing_y = rfc7515_a3_jwk();
  missing_y.erase("y");
  EXPECT_FALSE(from_jwk(missing_y, Algorithm::ES256));

  json short_ed = rfc8037_jwk();
  short_ed["x"] = base64url_encode(Bytes(31, 7));
  EXPECT_FALSE(from_jwk(short_ed, Algorithm::EdDSA));

  // A 1024-bit RSA modulus (the first half of the RFC 7638 one) is too weak to accept.
  json weak = rfc7638_jwk();
  weak["n"] = base64url_encode(ByteView(test::b64u(rfc::k7638N)).first(128));
  EXPECT_FALSE(from_jwk(weak, Algorithm::RS256));

  // RFC 7515 A.3 prints the private scalar too; a public-key parser must not take it.
  const auto private_jwk = from_jwk(a3_with("d", "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"), Algorithm::ES256);
  ASSERT_FALSE(private_jwk);
  EXPECT_NE(private_jwk.error().message.find("private"), std::string::npos) << private_jwk.error().message;
}

TEST(Jwk, ParsingStripsLeadingZerosFromRsaMembers) {
  const PublicKey key = from_jwk(rfc7638_jwk(), Algorithm::RS256).value();
  json padded = rfc7638_jwk();
  Bytes n = key.modulus;
  n.insert(n.begin(), 0);
  padded["n"] = base64url_encode(n);
  padded["e"] = "AAEAAQ";  // 00 01 00 01
  const auto parsed = from_jwk(padded, Algorithm::RS256);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, key);
  EXPECT_EQ(thumbprint(*parsed), rfc::k7638Thumbprint);
}

TEST(Jwk, MalformedKeyIsAPreconditionViolationNotAnOutOfBoundsRead) {
  EXPECT_THROW((void)to_jwk(PublicKey{Algorithm::ES256, {0x04, 1, 2}, {}, {}}), std::invalid_argument);
  EXPECT_THROW((void)thumbprint(PublicKey{Algorithm::EdDSA, Bytes(31, 1), {}, {}}), std::invalid_argument);
  EXPECT_THROW((void)thumbprint(PublicKey{Algorithm::RS256, {}, {}, {0x01, 0x00, 0x01}}), std::invalid_argument);
}

}  // namespace
}  // namespace hsmsignd::jose
