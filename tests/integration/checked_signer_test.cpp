// The front's check of a token's signatures: good keys sign and verify without a caught fault, and a key
// whose signatures do not match the public key the daemon publishes is caught before they leave.
#include "signing/checked_signer.h"

#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include <string>

#include "crypto/digest.h"
#include "crypto/verify.h"
#include "keys.h"
#include "sign.h"
#include "test_token.h"

namespace hsmsignd::signing {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::TestToken;

const std::string kMessage = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ";

std::string flipped(std::string s, std::size_t index) {
  s.at(index) ^= 0x01;
  return s;
}

class CheckedSignerTest : public ::testing::TestWithParam<Algorithm> {
 protected:
  void SetUp() override {
    pool_ = TestToken::get().open_pool(2);
    faults_before_ = CheckedSigner::caught_faults();
  }

  // A fresh key pair in the token, and what the pkcs11 layer returned for it.
  pkcs11::KeyObject generate(Algorithm alg) {
    auto lease = pool_->acquire().value();
    return pkcs11::generate_key_pair(lease.session(), {alg, 2048, random_id(), "checked-signer-test"}).value();
  }

  std::shared_ptr<pkcs11::Signer> open(const pkcs11::KeyObject& key, Algorithm alg) {
    return pkcs11::Signer::open(*pool_, key.id, alg).value();
  }

  // A checked key that the token signs for with `token_key`: as a signer process would, the token
  // signs what token_digest() says (a digest for ECDSA), and the answer is checked.
  struct Checked {
    std::shared_ptr<CheckedSigner> checker;
    std::shared_ptr<pkcs11::Signer> token_key;

    pkcs11::Result<Bytes> sign(std::string_view message) {
      const auto digest = checker->token_digest(message);
      auto signature = digest ? token_key->sign_digest(as_bytes(*digest)) : token_key->sign(as_bytes(message));
      return checker->check(digest.has_value(), digest ? std::string_view(*digest) : message, std::move(signature));
    }
    pkcs11::Result<Bytes> sign_digest(ByteView digest) {
      const std::string_view d(reinterpret_cast<const char*>(digest.data()), digest.size());
      return checker->check(true, d, token_key->sign_digest(digest));
    }
    const PublicKey& public_key() const { return checker->public_key(); }
    Algorithm algorithm() const { return checker->algorithm(); }
  };

  std::unique_ptr<Checked> checked(std::shared_ptr<pkcs11::Signer> key, VerifyPolicy policy) {
    auto checker = CheckedSigner::make(key->id(), key->public_key(), policy).value();
    return std::make_unique<Checked>(Checked{std::move(checker), std::move(key)});
  }

  // A key whose private half is `key` but which claims `public_key`: a token that signs with the wrong
  // key, as a faulty or tampered HSM could.
  std::unique_ptr<Checked> mismatched(const pkcs11::KeyObject& key, Algorithm alg, const PublicKey& public_key,
                                      VerifyPolicy policy) {
    auto checker = CheckedSigner::make(key.id, public_key, policy).value();
    return std::make_unique<Checked>(Checked{std::move(checker), open(key, alg)});
  }

  std::uint64_t new_faults() const { return CheckedSigner::caught_faults() - faults_before_; }

  std::unique_ptr<pkcs11::SessionPool> pool_;
  std::uint64_t faults_before_ = 0;
};

TEST_P(CheckedSignerTest, AGoodKeySignsAndTheSignatureVerifies) {
  const Algorithm alg = GetParam();
  auto signer = checked(open(generate(alg), alg), VerifyPolicy::all);
  EXPECT_EQ(signer->algorithm(), alg);
  for (int i = 0; i < 5; ++i) {
    const std::string message = kMessage + std::to_string(i);
    auto signature = signer->sign(message);
    ASSERT_TRUE(signature) << signature.error().what();
    EXPECT_TRUE(crypto::verify(signer->public_key(), as_bytes(message), *signature));
    // Tamper: another message, or a changed signature, does not verify.
    EXPECT_FALSE(crypto::verify(signer->public_key(), as_bytes(flipped(message, 3)), *signature));
    Bytes bad = *signature;
    bad[bad.size() / 2] ^= 0x01;
    EXPECT_FALSE(crypto::verify(signer->public_key(), as_bytes(message), bad));
  }
  EXPECT_EQ(new_faults(), 0u);
}

TEST_P(CheckedSignerTest, AGoodKeySignsDigestsThatVerify) {
  const Algorithm alg = GetParam();
  auto signer = checked(open(generate(alg), alg), VerifyPolicy::all);
  if (alg == Algorithm::EdDSA) {
    // Ed25519 signs whole messages: there is no digest to sign, and the refusal is not a fault.
    auto refused = signer->sign_digest(as_bytes(std::string(32, 'd')));
    EXPECT_FALSE(refused);
    EXPECT_EQ(new_faults(), 0u);
    return;
  }
  const Bytes digest = crypto::digest_for(alg, as_bytes(kMessage));
  auto signature = signer->sign_digest(digest);
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(crypto::verify_digest(signer->public_key(), digest, *signature));
  EXPECT_TRUE(crypto::verify(signer->public_key(), as_bytes(kMessage), *signature));  // the same JWS signature
  Bytes other = digest;
  other[0] ^= 0x01;
  EXPECT_FALSE(crypto::verify_digest(signer->public_key(), other, *signature));
  EXPECT_EQ(new_faults(), 0u);
}

TEST_P(CheckedSignerTest, ASignatureThatDoesNotMatchThePublicKeyIsCaught) {
  const Algorithm alg = GetParam();
  const auto real = generate(alg);
  const PublicKey other_public = open(generate(alg), alg)->public_key();
  auto signer = mismatched(real, alg, other_public, VerifyPolicy::all);

  auto signature = signer->sign(kMessage);
  ASSERT_FALSE(signature) << "a signature that does not verify left the signer";
  EXPECT_EQ(signature.error().kind, pkcs11::ErrorKind::token) << signature.error().what();
  EXPECT_EQ(signature.error().function, "C_Sign");
  EXPECT_EQ(signature.error().rv, CKR_DEVICE_ERROR) << "reported as CKR_DEVICE_ERROR: " << signature.error().what();
  EXPECT_EQ(new_faults(), 1u);
  if (alg != Algorithm::EdDSA) {
    auto digest_signature = signer->sign_digest(crypto::digest_for(alg, as_bytes(kMessage)));
    EXPECT_FALSE(digest_signature);
    EXPECT_EQ(new_faults(), 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, CheckedSignerTest,
                         ::testing::Values(Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                                           Algorithm::EdDSA),
                         [](const auto& info) { return std::string(name(info.param)); });

class CheckedSignerSampling : public CheckedSignerTest {};

TEST_F(CheckedSignerSampling, SampledPolicyStillChecksEveryRsaSignature) {
  // A faulty RSA-CRT signature gives the private key away: never sampled.
  const auto real = generate(Algorithm::RS256);
  const PublicKey other_public = open(generate(Algorithm::RS256), Algorithm::RS256)->public_key();
  auto signer = mismatched(real, Algorithm::RS256, other_public, VerifyPolicy::sampled);
  for (int i = 0; i < 40; ++i) EXPECT_FALSE(signer->sign(kMessage)) << i;
  EXPECT_EQ(new_faults(), 40u);
}

TEST_F(CheckedSignerSampling, SampledPolicyChecksOneEcSignatureIn32) {
  const auto real = generate(Algorithm::ES256);
  const PublicKey other_public = open(generate(Algorithm::ES256), Algorithm::ES256)->public_key();
  auto signer = mismatched(real, Algorithm::ES256, other_public, VerifyPolicy::sampled);
  int refused = 0;
  for (int i = 0; i < 64; ++i) refused += !signer->sign(kMessage);
  EXPECT_EQ(refused, 2);  // the 1st and the 33rd
  EXPECT_EQ(new_faults(), 2u);
}

TEST_F(CheckedSignerSampling, SampledPolicyPassesGoodEcSignatures) {
  auto signer = checked(open(generate(Algorithm::ES256), Algorithm::ES256), VerifyPolicy::sampled);
  for (int i = 0; i < 40; ++i) {
    auto signature = signer->sign(kMessage);
    ASSERT_TRUE(signature);
    EXPECT_TRUE(crypto::verify(signer->public_key(), as_bytes(kMessage), *signature));
  }
  EXPECT_EQ(new_faults(), 0u);
}

}  // namespace
}  // namespace hsmsignd::signing
