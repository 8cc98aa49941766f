// Signatures made inside the token, checked by OpenSSL from the exported public key alone.
#include <gtest/gtest.h>

#include <fstream>

#include "crypto/digest.h"
#include "crypto/ecdsa_sig.h"
#include "crypto/evp_key.h"
#include "crypto/verify.h"
#include "keys.h"
#include "sign.h"
#include "test_token.h"

#include <openssl/pem.h>

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::run_command;
using hsmsignd::testing::TestToken;

const std::string kMessage = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

class Signing : public ::testing::TestWithParam<Algorithm> {
 protected:
  void SetUp() override {
    pool_ = TestToken::get().open_pool();
    id_ = random_id();
    {
      auto lease = pool_->acquire().value();
      generate_key_pair(lease.session(), {GetParam(), 2048, id_, "sign-test"}).value();
    }
    signer_ = Signer::open(*pool_, id_, GetParam()).value();
  }
  std::unique_ptr<SessionPool> pool_;
  Bytes id_;
  std::shared_ptr<Signer> signer_;
};

TEST_P(Signing, ASignatureVerifiesWithTheExportedPublicKey) {
  auto sig = signer_->sign(as_bytes(kMessage));
  ASSERT_TRUE(sig) << sig.error().what();
  EXPECT_TRUE(crypto::verify(signer_->public_key(), as_bytes(kMessage), *sig));
}

TEST_P(Signing, AFlippedSignatureByteFailsVerification) {
  auto sig = signer_->sign(as_bytes(kMessage)).value();
  for (std::size_t at : {std::size_t{0}, sig.size() / 2, sig.size() - 1}) {
    Bytes bad = sig;
    bad[at] ^= 0x01;
    EXPECT_FALSE(crypto::verify(signer_->public_key(), as_bytes(kMessage), bad)) << "byte " << at;
  }
}

TEST_P(Signing, AChangedMessageFailsVerification) {
  auto sig = signer_->sign(as_bytes(kMessage)).value();
  std::string other = kMessage;
  other.back() ^= 0x01;
  EXPECT_FALSE(crypto::verify(signer_->public_key(), as_bytes(other), sig));
}

TEST_P(Signing, TheSignatureHasTheLengthOfItsAlgorithm) {
  auto sig = signer_->sign(as_bytes(kMessage)).value();
  switch (GetParam()) {
    case Algorithm::ES256: EXPECT_EQ(sig.size(), 64u); break;
    case Algorithm::ES384: EXPECT_EQ(sig.size(), 96u); break;
    case Algorithm::EdDSA: EXPECT_EQ(sig.size(), 64u); break;
    default: EXPECT_EQ(sig.size(), 256u);
  }
}

TEST_P(Signing, ADigestSignatureVerifiesOverThatDigest) {
  if (GetParam() == Algorithm::EdDSA) {
    auto refused = signer_->sign_digest(crypto::sha256(as_bytes(kMessage)));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, ErrorKind::refused);
    return;
  }
  const Bytes digest = crypto::digest_for(GetParam(), as_bytes(kMessage));
  auto sig = signer_->sign_digest(digest);
  ASSERT_TRUE(sig) << sig.error().what();
  EXPECT_TRUE(crypto::verify_digest(signer_->public_key(), digest, *sig));
  // Same bytes as signing the message: a JWS verifier accepts it over the message.
  EXPECT_TRUE(crypto::verify(signer_->public_key(), as_bytes(kMessage), *sig));
  Bytes short_digest(digest.begin(), digest.end() - 1);
  EXPECT_FALSE(signer_->sign_digest(short_digest));
}

TEST_P(Signing, TheOpensslCommandLineAgrees) {
  // A second, separately written verifier: the openssl tool reading a PEM of the exported key.
  const auto dir = TestToken::get().dir();
  const std::string tag = std::string(name(GetParam()));
  auto evp = crypto::to_evp(signer_->public_key()).value();
  {
    std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen((dir / (tag + ".pub.pem")).c_str(), "w"), &std::fclose);
    ASSERT_EQ(PEM_write_PUBKEY(f.get(), evp.get()), 1);
  }
  std::ofstream(dir / (tag + ".msg"), std::ios::binary) << kMessage;
  Bytes sig = signer_->sign(as_bytes(kMessage)).value();
  if (ec_field_size(GetParam()) != 0) sig = crypto::ecdsa_raw_to_der(sig, ec_field_size(GetParam())).value();
  std::ofstream(dir / (tag + ".sig"), std::ios::binary).write(reinterpret_cast<const char*>(sig.data()),
                                                              static_cast<std::streamsize>(sig.size()));
  const std::string files = " -pubin -inkey " + (dir / (tag + ".pub.pem")).string() + " -sigfile " +
                            (dir / (tag + ".sig")).string() + " -in " + (dir / (tag + ".msg")).string();
  std::string cmd;
  switch (GetParam()) {
    case Algorithm::EdDSA: cmd = "openssl pkeyutl -verify -rawin" + files; break;
    case Algorithm::ES384: cmd = "openssl pkeyutl -verify -rawin -digest sha384" + files; break;
    case Algorithm::PS256:
      cmd = "openssl pkeyutl -verify -rawin -digest sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt "
            "rsa_pss_saltlen:32 -pkeyopt rsa_mgf1_md:sha256" + files;
      break;
    default: cmd = "openssl pkeyutl -verify -rawin -digest sha256" + files;
  }
  std::string out;
  EXPECT_EQ(run_command(cmd, &out), 0) << cmd << "\n" << out;
  EXPECT_NE(out.find("Signature Verified Successfully"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, Signing,
                         ::testing::Values(Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                                           Algorithm::EdDSA),
                         [](const auto& info) { return std::string(name(info.param)); });

}  // namespace
}  // namespace hsmsignd::pkcs11
