#include "jose/jws.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/verify.h"
#include "jose/jwk.h"
#include "rfc_vectors.h"
#include "test_support.h"

namespace hsmsignd::jose {
namespace {

using nlohmann::json;
using test::b64u;
using test::flipped;
namespace rfc = test::rfc;

PublicKey rfc7515_a2_key() {
  return from_jwk(json{{"kty", "RSA"}, {"n", rfc::kA2N}, {"e", rfc::kA2E}}, Algorithm::RS256).value();
}

PublicKey rfc7515_a3_key() {
  return from_jwk(json{{"kty", "EC"}, {"crv", "P-256"}, {"x", rfc::kA3X}, {"y", rfc::kA3Y}}, Algorithm::ES256).value();
}

TEST(Jws, Rfc7515A2Rs256SigningInputAndSignature) {
  EXPECT_EQ(signing_input(rfc::kA2Header, as_bytes(rfc::kJwsPayload)), rfc::kA2SigningInput);
  // Tamper: the header is signed as given, so one space more is another signing input.
  EXPECT_NE(signing_input(R"({"alg": "RS256"})", as_bytes(rfc::kJwsPayload)), rfc::kA2SigningInput);

  const PublicKey key = rfc7515_a2_key();
  const Bytes signature = b64u(rfc::kA2Signature);
  ASSERT_EQ(signature.size(), 256u);
  EXPECT_TRUE(crypto::verify(key, as_bytes(rfc::kA2SigningInput), signature));
  EXPECT_FALSE(crypto::verify(key, as_bytes(rfc::kA2SigningInput), flipped(signature, 17)));
  EXPECT_FALSE(crypto::verify(key, flipped(rfc::kA2SigningInput, 30), signature));

  // The same key read as PS256 refuses the PKCS#1 v1.5 signature: no algorithm confusion.
  PublicKey as_pss = key;
  as_pss.algorithm = Algorithm::PS256;
  EXPECT_FALSE(crypto::verify(as_pss, as_bytes(rfc::kA2SigningInput), signature));
}

TEST(Jws, CompactSerialisationAppendsTheEncodedSignature) {
  const std::string expected = std::string(rfc::kA2SigningInput) + "." + std::string(rfc::kA2Signature);
  EXPECT_EQ(compact(rfc::kA2SigningInput, b64u(rfc::kA2Signature)), expected);
  EXPECT_NE(compact(rfc::kA2SigningInput, flipped(b64u(rfc::kA2Signature), 0)), expected);
  // Empty parts still leave both dots.
  EXPECT_EQ(signing_input("{}", {}), "e30.");
  EXPECT_EQ(compact("e30.", {}), "e30..");
}

TEST(Jws, Rfc7515A3Es256SigningInputAndSignature) {
  EXPECT_EQ(signing_input(rfc::kA3Header, as_bytes(rfc::kJwsPayload)), rfc::kA3SigningInput);

  const PublicKey key = rfc7515_a3_key();
  const Bytes signature = b64u(rfc::kA3Signature);
  ASSERT_EQ(signature.size(), 64u);  // R‖S, not DER
  EXPECT_TRUE(crypto::verify(key, as_bytes(rfc::kA3SigningInput), signature));
  EXPECT_FALSE(crypto::verify(key, as_bytes(rfc::kA3SigningInput), flipped(signature, 5)));   // in R
  EXPECT_FALSE(crypto::verify(key, as_bytes(rfc::kA3SigningInput), flipped(signature, 40)));  // in S
  EXPECT_FALSE(crypto::verify(key, flipped(rfc::kA3SigningInput, 0), signature));
}

TEST(Jws, Rfc8037A4Ed25519SigningInputAndSignature) {
  EXPECT_EQ(signing_input(rfc::k8037Header, as_bytes(rfc::k8037Payload)), rfc::k8037SigningInput);

  const PublicKey key =
      from_jwk(json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", rfc::k8037X}}, Algorithm::EdDSA).value();
  const Bytes signature = b64u(rfc::k8037Signature);
  ASSERT_EQ(signature.size(), 64u);
  EXPECT_TRUE(crypto::verify(key, as_bytes(rfc::k8037SigningInput), signature));
  EXPECT_FALSE(crypto::verify(key, as_bytes(rfc::k8037SigningInput), flipped(signature, 63)));
  EXPECT_FALSE(crypto::verify(key, flipped(rfc::k8037SigningInput, 21), signature));
}

}  // namespace
}  // namespace hsmsignd::jose
