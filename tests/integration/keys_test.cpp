// Key pairs generated inside the token: found again, listed, exported, destroyed.
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include "crypto/evp_key.h"
#include "keys.h"
#include "test_token.h"

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::TestToken;

struct KeyCase {
  Algorithm algorithm;
  unsigned rsa_bits;
};

std::string case_name(const ::testing::TestParamInfo<KeyCase>& info) {
  std::string n(name(info.param.algorithm));
  if (key_type(info.param.algorithm) == KeyType::RSA) n += "_" + std::to_string(info.param.rsa_bits);
  return n;
}

class KeyGeneration : public ::testing::TestWithParam<KeyCase> {
 protected:
  void SetUp() override { pool_ = TestToken::get().open_pool(); }
  std::unique_ptr<SessionPool> pool_;
};

TEST_P(KeyGeneration, MakesAKeyBornInTheTokenThatNeverLeavesIt) {
  const auto [alg, bits] = GetParam();
  auto lease = pool_->acquire().value();
  const Bytes id = random_id();
  auto key = generate_key_pair(lease.session(), {alg, bits, id, "test:" + std::string(name(alg))});
  ASSERT_TRUE(key) << key.error().what();

  EXPECT_EQ(key->id, id);
  EXPECT_EQ(key->label, "test:" + std::string(name(alg)));
  EXPECT_TRUE(fits(*key, alg));
  EXPECT_TRUE(key->custody.local);
  EXPECT_TRUE(key->custody.never_extractable);
  EXPECT_TRUE(key->custody.always_sensitive);
  EXPECT_TRUE(key->custody.sensitive);
  EXPECT_FALSE(key->custody.extractable);
  EXPECT_NE(key->public_key, 0u);
  if (key_type(alg) == KeyType::RSA) {
    EXPECT_EQ(key->bits, bits);
  }

  // Sign is the only use: no decrypt, unwrap or derive.
  for (unsigned long usage : {CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE}) {
    auto v = read_attribute(lease.session(), key->private_key, usage);
    ASSERT_TRUE(v) << v.error().what();
    EXPECT_EQ(v->at(0), CK_FALSE) << usage;
  }
  EXPECT_EQ(read_attribute(lease.session(), key->private_key, CKA_SIGN).value().at(0), CK_TRUE);

  // The public half is exported and OpenSSL accepts it as a key of that algorithm.
  auto pub = export_public_key(lease.session(), *key, alg);
  ASSERT_TRUE(pub) << pub.error().what();
  auto evp = crypto::to_evp(*pub);
  ASSERT_TRUE(evp) << evp.error().what();
  if (key_type(alg) == KeyType::RSA) {
    EXPECT_EQ(pub->exponent, (Bytes{0x01, 0x00, 0x01}));
    EXPECT_EQ(EVP_PKEY_get_bits(evp->get()), static_cast<int>(bits));
  }
}

TEST_P(KeyGeneration, PrivateKeyMaterialCannotBeRead) {
  const auto [alg, bits] = GetParam();
  auto lease = pool_->acquire().value();
  auto key = generate_key_pair(lease.session(), {alg, bits, random_id(), "secret"}).value();
  const unsigned long secret = key_type(alg) == KeyType::RSA ? CKA_PRIVATE_EXPONENT : CKA_VALUE;
  auto value = read_attribute(lease.session(), key.private_key, secret);
  ASSERT_FALSE(value) << "the token handed out private key material";
  EXPECT_EQ(value.error().rv, CKR_ATTRIBUTE_SENSITIVE) << value.error().what();
  if (key_type(alg) == KeyType::RSA) {
    for (unsigned long part : {CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT})
      EXPECT_FALSE(read_attribute(lease.session(), key.private_key, part)) << part;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, KeyGeneration,
                         ::testing::Values(KeyCase{Algorithm::ES256, 0}, KeyCase{Algorithm::ES384, 0},
                                           KeyCase{Algorithm::RS256, 2048}, KeyCase{Algorithm::RS256, 3072},
                                           KeyCase{Algorithm::PS256, 4096}, KeyCase{Algorithm::EdDSA, 0}),
                         case_name);

class Keys : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = TestToken::get().open_pool();
    lease_.emplace(pool_->acquire().value());
  }
  SessionRef session() const { return lease_->session(); }
  std::unique_ptr<SessionPool> pool_;
  std::optional<SessionPool::Lease> lease_;
};

TEST_F(Keys, AreFoundAgainByTheirId) {
  const Bytes id = random_id();
  auto made = generate_key_pair(session(), {Algorithm::ES256, 0, id, "found"}).value();
  auto found = find_key(session(), id);
  ASSERT_TRUE(found) << found.error().what();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->private_key, made.private_key);
  EXPECT_EQ((*found)->public_key, made.public_key);
  EXPECT_EQ(export_public_key(session(), **found, Algorithm::ES256).value(),
            export_public_key(session(), made, Algorithm::ES256).value());
}

TEST_F(Keys, AnUnknownIdFindsNothing) {
  auto found = find_key(session(), random_id());
  ASSERT_TRUE(found) << found.error().what();
  EXPECT_FALSE(found->has_value());
}

TEST_F(Keys, TwoPrivateKeysWithOneIdAreRefusedAsAmbiguous) {
  const Bytes id = random_id();
  generate_key_pair(session(), {Algorithm::ES256, 0, id, "twin"}).value();
  generate_key_pair(session(), {Algorithm::ES256, 0, id, "twin"}).value();
  auto found = find_key(session(), id);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().kind, ErrorKind::refused);
}

TEST_F(Keys, AreListedWithTheirCustody) {
  const Bytes a = random_id(), b = random_id();
  generate_key_pair(session(), {Algorithm::ES256, 0, a, "list-a"}).value();
  generate_key_pair(session(), {Algorithm::EdDSA, 0, b, "list-b"}).value();
  auto keys = list_keys(session());
  ASSERT_TRUE(keys) << keys.error().what();
  int seen = 0;
  for (const auto& k : *keys) {
    if (k.id == a || k.id == b) {
      ++seen;
      EXPECT_TRUE(CustodyPolicy{}.trustworthy(k.custody)) << k.label;
    }
  }
  EXPECT_EQ(seen, 2);
}

TEST_F(Keys, DestroyRemovesBothHalvesAndIsIdempotent) {
  const Bytes id = random_id();
  generate_key_pair(session(), {Algorithm::ES256, 0, id, "doomed"}).value();
  ASSERT_TRUE(destroy_key(session(), id)) << "first destroy";
  EXPECT_FALSE(find_key(session(), id).value().has_value());
  // No public object with that id is left either.
  auto all = list_keys(session()).value();
  for (const auto& k : all) EXPECT_NE(k.id, id);
  EXPECT_TRUE(destroy_key(session(), id)) << "destroying what is gone is success";
}

TEST_F(Keys, ExportRefusesAnAlgorithmTheKeyDoesNotFit) {
  auto key = generate_key_pair(session(), {Algorithm::ES256, 0, random_id(), "p256"}).value();
  EXPECT_FALSE(fits(key, Algorithm::ES384));
  EXPECT_FALSE(fits(key, Algorithm::RS256));
  auto pub = export_public_key(session(), key, Algorithm::ES384);
  ASSERT_FALSE(pub);
  EXPECT_EQ(pub.error().kind, ErrorKind::refused);
}

TEST_F(Keys, GenerationRefusesMissingIdOrOddRsaSize) {
  EXPECT_FALSE(generate_key_pair(session(), {Algorithm::ES256, 0, {}, "no-id"}));
  EXPECT_FALSE(generate_key_pair(session(), {Algorithm::ES256, 0, random_id(), ""}));
  auto odd = generate_key_pair(session(), {Algorithm::RS256, 1024, random_id(), "weak"});
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.error().what().find("2048"), std::string::npos);
}

}  // namespace
}  // namespace hsmsignd::pkcs11
