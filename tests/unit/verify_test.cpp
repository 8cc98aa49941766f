#include "crypto/verify.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "crypto/digest.h"
#include "crypto/evp_key.h"
#include "software_keys.h"
#include "test_support.h"

namespace hsmsignd::crypto {
namespace {

using test::flipped;

constexpr Algorithm kAll[] = {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                              Algorithm::EdDSA};
constexpr std::string_view kMessage = "eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0";

TEST(Verify, Ps256SignatureFromOpenSslVerifies) {
  EVP_PKEY* key = test::shared_key(Algorithm::PS256);
  const Bytes signature = test::sign(key, Algorithm::PS256, as_bytes(kMessage));
  const PublicKey public_key = from_evp(key, Algorithm::PS256).value();

  EXPECT_TRUE(verify(public_key, as_bytes(kMessage), signature));
  EXPECT_FALSE(verify(public_key, as_bytes(kMessage), flipped(signature, 100)));
  EXPECT_FALSE(verify(public_key, flipped(kMessage, 0), signature));
}

TEST(Verify, EverySoftwareSignatureVerifiesAndFailsWhenTampered) {
  for (auto algorithm : kAll) {
    SCOPED_TRACE(name(algorithm));
    EVP_PKEY* key = test::shared_key(algorithm);
    const Bytes signature = test::sign(key, algorithm, as_bytes(kMessage));
    const PublicKey public_key = test::shared_public_key(algorithm);

    EXPECT_TRUE(verify(public_key, as_bytes(kMessage), signature));
    EXPECT_TRUE(verify(key, algorithm, as_bytes(kMessage), signature));  // the prebuilt-key overload
    EXPECT_FALSE(verify(public_key, as_bytes(kMessage), flipped(signature, 0)));
    EXPECT_FALSE(verify(public_key, as_bytes(kMessage), flipped(signature, signature.size() - 1)));
    EXPECT_FALSE(verify(public_key, flipped(kMessage, kMessage.size() - 1), signature));
    // Nor under another key of the same kind.
    const auto other = from_evp(test::generate_key(algorithm).get(), algorithm).value();
    EXPECT_FALSE(verify(other, as_bytes(kMessage), signature));
  }
}

TEST(Verify, RsaPaddingModesAreNotInterchangeable) {
  PublicKey rsa = test::shared_public_key(Algorithm::RS256);
  const Bytes pkcs1 = test::sign(test::shared_key(Algorithm::RS256), Algorithm::RS256, as_bytes(kMessage));
  const Bytes pss = test::sign(test::shared_key(Algorithm::PS256), Algorithm::PS256, as_bytes(kMessage));

  EXPECT_TRUE(verify(rsa, as_bytes(kMessage), pkcs1));
  EXPECT_FALSE(verify(rsa, as_bytes(kMessage), pss));
  rsa.algorithm = Algorithm::PS256;
  EXPECT_TRUE(verify(rsa, as_bytes(kMessage), pss));
  EXPECT_FALSE(verify(rsa, as_bytes(kMessage), pkcs1));

  // RFC 7518 §3.5 fixes the PSS salt at the hash size; a PSS signature with a 20-byte salt is not PS256.
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr,
                                  test::shared_key(Algorithm::PS256), nullptr), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 20), 1);
  Bytes short_salt(256);
  std::size_t len = short_salt.size();
  ASSERT_EQ(EVP_DigestSign(ctx.get(), short_salt.data(), &len, as_bytes(kMessage).data(), kMessage.size()), 1);
  EXPECT_FALSE(verify(rsa, as_bytes(kMessage), short_salt));
}

TEST(VerifyDigest, AcceptsSignaturesOverTheDigestTheTokenSigns) {
  for (auto algorithm : {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256}) {
    SCOPED_TRACE(name(algorithm));
    const Bytes signature = test::sign(test::shared_key(algorithm), algorithm, as_bytes(kMessage));
    const PublicKey key = test::shared_public_key(algorithm);
    const Bytes digest = digest_for(algorithm, as_bytes(kMessage));

    EXPECT_TRUE(verify_digest(key, digest, signature));
    EXPECT_FALSE(verify_digest(key, flipped(digest, 3), signature));
    EXPECT_FALSE(verify_digest(key, digest, flipped(signature, 3)));
    // A digest of the wrong length is refused before OpenSSL sees it.
    EXPECT_FALSE(verify_digest(key, Bytes(digest.begin(), digest.end() - 1), signature));
  }

  // EdDSA has no separate digest: always false, even with a signature that verify() accepts.
  const Bytes ed_signature = test::sign(test::shared_key(Algorithm::EdDSA), Algorithm::EdDSA, as_bytes(kMessage));
  const PublicKey ed_key = test::shared_public_key(Algorithm::EdDSA);
  ASSERT_TRUE(verify(ed_key, as_bytes(kMessage), ed_signature));
  EXPECT_FALSE(verify_digest(ed_key, sha256(as_bytes(kMessage)), ed_signature));
  EXPECT_FALSE(verify_digest(ed_key, as_bytes(kMessage), ed_signature));
}

TEST(Verify, MalformedInputIsFalseNeverACrash) {
  for (auto algorithm : kAll) {
    SCOPED_TRACE(name(algorithm));
    const PublicKey key = test::shared_public_key(algorithm);
    const Bytes signature = test::sign(test::shared_key(algorithm), algorithm, as_bytes(kMessage));
    ASSERT_TRUE(verify(key, as_bytes(kMessage), signature));

    Bytes longer = signature;
    longer.push_back(0);
    for (const Bytes& bad : {Bytes{}, Bytes{0x30}, Bytes(signature.size(), 0), Bytes(signature.size(), 0xFF),
                             Bytes(signature.begin(), signature.end() - 1), longer, Bytes(10000, 0x42)}) {
      EXPECT_FALSE(verify(key, as_bytes(kMessage), bad)) << bad.size() << " bytes";
      EXPECT_FALSE(verify_digest(key, sha256(as_bytes(kMessage)), bad)) << bad.size() << " bytes";
    }

    // A key that cannot be built is a failed verification, not an error to handle.
    PublicKey broken = key;
    broken.point.clear();
    broken.modulus.clear();
    EXPECT_FALSE(verify(broken, as_bytes(kMessage), signature));
    EXPECT_FALSE(verify(nullptr, algorithm, as_bytes(kMessage), signature));
  }
  // Keys of the wrong type or curve through the prebuilt-key overload.
  EXPECT_FALSE(verify(test::shared_key(Algorithm::ES256), Algorithm::RS256, as_bytes(kMessage), Bytes(256, 1)));
  EXPECT_FALSE(verify(test::shared_key(Algorithm::ES384), Algorithm::ES256, as_bytes(kMessage), Bytes(64, 1)));
  // And nothing is left on the OpenSSL error queue to be blamed on a later, unrelated call.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace hsmsignd::crypto
