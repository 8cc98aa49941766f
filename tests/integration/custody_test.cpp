// A key that was not born in the token, or that could ever have left it, is refused for signing.
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include "keys.h"
#include "sign.h"
#include "test_token.h"

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::run_command;
using hsmsignd::testing::TestToken;

std::string hex(const Bytes& b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

class Custody : public ::testing::Test {
 protected:
  void SetUp() override { pool_ = TestToken::get().open_pool(); }
  std::unique_ptr<SessionPool> pool_;
};

TEST_F(Custody, AnImportedKeyIsRefusedForSigning) {
  // OpenSC's pkcs11-tool, an independent client, imports a private key made outside the token.
  const auto& token = TestToken::get();
  const auto pem = token.dir() / "imported.pem";
  const Bytes id = random_id();
  std::string out;
  ASSERT_EQ(run_command("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + pem.string(), &out), 0)
      << out;
  ASSERT_EQ(run_command("pkcs11-tool --module " HSMSIGND_SOFTHSM2_MODULE " --token-label " +
                            std::string(TestToken::kLabel) + " --login --pin " + TestToken::kPin +
                            " --write-object " + pem.string() + " --type privkey --id " + hex(id) +
                            " --label imported",
                        &out),
            0)
      << out;

  auto lease = pool_->acquire().value();
  auto key = find_key(lease.session(), id).value();
  ASSERT_TRUE(key.has_value());
  EXPECT_FALSE(key->custody.local);
  EXPECT_FALSE(key->custody.trustworthy());
  auto signing = signing_key(*key, Algorithm::ES256);
  ASSERT_FALSE(signing);
  EXPECT_EQ(signing.error().kind, ErrorKind::refused);
  EXPECT_NE(signing.error().what().find("custody"), std::string::npos);

  auto signer = Signer::open(*pool_, id, Algorithm::ES256);
  EXPECT_FALSE(signer);
}

TEST_F(Custody, AKeyGeneratedExtractableIsRefusedForSigning) {
  // Made in the token, but once allowed to leave it: CKA_LOCAL alone is not enough.
  auto lease = pool_->acquire().value();
  auto* fl = static_cast<CK_FUNCTION_LIST*>(pool_->module().raw_function_list());
  const Bytes id = random_id();
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &yes, 1}, {CKA_EC_PARAMS, p256, sizeof p256}, {CKA_ID, (void*)id.data(), id.size()}};
  CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1}, {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &no, 1},
                         {CKA_EXTRACTABLE, &yes, 1}, {CKA_SIGN, &yes, 1}, {CKA_ID, (void*)id.data(), id.size()}};
  CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE hpub = 0, hpriv = 0;
  ASSERT_EQ(fl->C_GenerateKeyPair(lease.session().handle, &mech, pub, 3, priv, 6, &hpub, &hpriv), CKR_OK);

  auto key = find_key(lease.session(), id).value();
  ASSERT_TRUE(key.has_value());
  EXPECT_TRUE(key->custody.local);
  EXPECT_TRUE(key->custody.extractable);
  EXPECT_FALSE(key->custody.trustworthy());
  EXPECT_FALSE(signing_key(*key, Algorithm::ES256));
}

TEST_F(Custody, AGoodKeyIsAcceptedOnlyForItsOwnAlgorithm) {
  auto lease = pool_->acquire().value();
  auto key = generate_key_pair(lease.session(), {Algorithm::ES384, 0, random_id(), "p384"}).value();
  EXPECT_TRUE(signing_key(key, Algorithm::ES384));
  EXPECT_FALSE(signing_key(key, Algorithm::ES256));
  EXPECT_FALSE(signing_key(key, Algorithm::EdDSA));
}

}  // namespace
}  // namespace hsmsignd::pkcs11
