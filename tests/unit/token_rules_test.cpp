// The token rules without a token: which keysets a mechanism list can serve, which fallback each
// missing hash-and-sign mechanism takes, the key templates' usage attributes, the custody policy, and
// which destroy failures earn a re-initialisation. The lists are the ones the issue measured: SoftHSM
// (everything), NSS softoken and the TPM (no EdDSA), p11-kit 0.24.1 (no CKM_SHA256_RSA_PKCS_PSS).
#include "token_rules.h"

#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>

#include "keys.h"

namespace hsmsignd::pkcs11 {
namespace {

std::vector<MechanismInfo> softhsm() {
  return {{CKM_RSA_PKCS_KEY_PAIR_GEN, 512, 16384, CKF_GENERATE_KEY_PAIR},
          {CKM_RSA_PKCS, 512, 16384, CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT},
          {CKM_RSA_PKCS_PSS, 512, 16384, CKF_SIGN | CKF_VERIFY},
          {CKM_SHA256_RSA_PKCS, 512, 16384, CKF_SIGN | CKF_VERIFY},
          {CKM_SHA256_RSA_PKCS_PSS, 512, 16384, CKF_SIGN | CKF_VERIFY},
          {CKM_EC_KEY_PAIR_GEN, 256, 521, CKF_GENERATE_KEY_PAIR},
          {CKM_ECDSA, 256, 521, CKF_SIGN | CKF_VERIFY},
          {CKM_EC_EDWARDS_KEY_PAIR_GEN, 255, 448, CKF_GENERATE_KEY_PAIR},
          {CKM_EDDSA, 255, 448, CKF_SIGN | CKF_VERIFY}};
}

std::vector<MechanismInfo> without(std::vector<MechanismInfo> list, std::initializer_list<CK_MECHANISM_TYPE> gone) {
  std::erase_if(list, [&](const MechanismInfo& m) { return std::find(gone.begin(), gone.end(), m.type) != gone.end(); });
  return list;
}

const std::vector<KeysetNeeds> kEveryJwtKeyset{{"es", Algorithm::ES256, 2048, false},
                                               {"es384", Algorithm::ES384, 2048, false},
                                               {"rs", Algorithm::RS256, 3072, false},
                                               {"ps", Algorithm::PS256, 2048, false},
                                               {"ed", Algorithm::EdDSA, 2048, false}};

TEST(TokenRules, SoftHsmServesEveryKeysetWithoutAFallback) {
  const auto c = check_capabilities(softhsm(), kEveryJwtKeyset);
  EXPECT_TRUE(c.refusals.empty());
  EXPECT_TRUE(c.fallbacks.empty());
  EXPECT_EQ(c.plan.rs256, Hashing::token);
  EXPECT_EQ(c.plan.ps256, Hashing::token);
}

TEST(TokenRules, ATokenWithoutEdwardsCurvesRefusesTheEdDSAKeysetByName) {
  // NSS softoken and tpm2-pkcs11 have no Ed25519.
  const auto c = check_capabilities(without(softhsm(), {CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA}), kEveryJwtKeyset);
  ASSERT_EQ(c.refusals.size(), 2u);
  EXPECT_EQ(c.refusals[0], "keyset \"ed\": the token has no CKM_EC_EDWARDS_KEY_PAIR_GEN");
  EXPECT_EQ(c.refusals[1], "keyset \"ed\": the token has no CKM_EDDSA");
}

TEST(TokenRules, PS256FallsBackToPssOnTheDigestWhenP11KitDropsTheHashingMechanism) {
  const auto c = check_capabilities(without(softhsm(), {CKM_SHA256_RSA_PKCS_PSS, CKM_ECDSA_SHA256}), kEveryJwtKeyset);
  EXPECT_TRUE(c.refusals.empty());
  EXPECT_EQ(c.plan.ps256, Hashing::here);
  EXPECT_EQ(c.plan.rs256, Hashing::token);
  ASSERT_EQ(c.fallbacks.size(), 1u);
  EXPECT_NE(c.fallbacks[0].find("keyset \"ps\": the token has no CKM_SHA256_RSA_PKCS_PSS"), std::string::npos);
  EXPECT_NE(c.fallbacks[0].find("CKM_RSA_PKCS_PSS"), std::string::npos);
}

TEST(TokenRules, RS256FallsBackToRawPkcs1OnlyWithoutTheHashingMechanism) {
  const auto c = check_capabilities(without(softhsm(), {CKM_SHA256_RSA_PKCS}), kEveryJwtKeyset);
  EXPECT_TRUE(c.refusals.empty());
  EXPECT_EQ(c.plan.rs256, Hashing::here);
  // Fails because neither RS256 mechanism is left.
  const auto none = check_capabilities(without(softhsm(), {CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS}), kEveryJwtKeyset);
  ASSERT_EQ(none.refusals.size(), 1u);
  EXPECT_EQ(none.refusals[0], "keyset \"rs\": the token has no CKM_SHA256_RSA_PKCS (nor CKM_RSA_PKCS)");
}

TEST(TokenRules, TheTpmKeepsHashingInTheTokenForRS256) {
  // tpm2-pkcs11's raw CKM_RSA_PKCS needs a decrypt-capable key: the list has CKM_SHA256_RSA_PKCS, so it is used.
  const auto c = check_capabilities(without(softhsm(), {CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA}),
                                    {{"rs", Algorithm::RS256, 2048, false}});
  EXPECT_TRUE(c.refusals.empty());
  EXPECT_EQ(c.plan.rs256, Hashing::token);
}

TEST(TokenRules, RefusesAnRsaSizeOutsideTheTokensRange) {
  auto list = softhsm();
  list[0].max_key_size = 3072;  // the TPM's limit
  const auto c = check_capabilities(list, {{"rs", Algorithm::RS256, 4096, false}, {"ok", Algorithm::RS256, 3072, false}});
  ASSERT_EQ(c.refusals.size(), 1u);
  EXPECT_EQ(c.refusals[0], "keyset \"rs\": the token has no CKM_RSA_PKCS_KEY_PAIR_GEN for 4096-bit keys (it makes 512 to 3072)");
}

TEST(TokenRules, AMechanismListedWithoutTheSignFlagDoesNotCount) {
  auto list = softhsm();
  for (auto& m : list)
    if (m.type == CKM_ECDSA) m.flags = CKF_VERIFY;
  const auto c = check_capabilities(list, {{"es", Algorithm::ES256, 2048, false}});
  ASSERT_EQ(c.refusals.size(), 1u);
  EXPECT_EQ(c.refusals[0], "keyset \"es\": the token has no CKM_ECDSA");
}

TEST(TokenRules, TlsKeysetsNeedBothRawRsaPaddingsEvenWhenTheHashingOnesExist) {
  const auto list = without(softhsm(), {CKM_RSA_PKCS_PSS});
  const auto c = check_capabilities(list, {{"tls", Algorithm::RS256, 2048, true}, {"jwt", Algorithm::RS256, 2048, false}});
  ASSERT_EQ(c.refusals.size(), 1u);
  EXPECT_EQ(c.refusals[0], "keyset \"tls\": the token has no CKM_RSA_PKCS_PSS (a tls keyset signs digests)");
}

TEST(TokenRules, ThePublicHalfHasNeitherVerifyNorEncrypt) {
  for (auto a : {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA}) {
    const auto u = key_usage(a);
    for (const auto& [type, value] : u.public_half) {
      EXPECT_NE(type, CKA_VERIFY) << name(a);
      EXPECT_NE(type, CKA_ENCRYPT) << name(a);
    }
    auto has = [&](CK_ATTRIBUTE_TYPE t, bool v) {
      return std::find(u.private_half.begin(), u.private_half.end(), UsageAttribute{t, v}) != u.private_half.end();
    };
    EXPECT_TRUE(has(CKA_SIGN, true) && has(CKA_SENSITIVE, true) && has(CKA_EXTRACTABLE, false) && has(CKA_DECRYPT, false))
        << name(a);
  }
}

TEST(TokenRules, OnlyFailuresAReinitialisationCanCureRetryADestroy) {
  EXPECT_TRUE(destroy_retry_after_reinitialisation(Error::token("C_DestroyObject", CKR_FUNCTION_FAILED)));
  EXPECT_TRUE(destroy_retry_after_reinitialisation(Error::token("C_DestroyObject", CKR_DEVICE_ERROR)));
  EXPECT_FALSE(destroy_retry_after_reinitialisation(Error::token("C_DestroyObject", CKR_ACTION_PROHIBITED)));
  EXPECT_FALSE(destroy_retry_after_reinitialisation(Error::token("C_Login", CKR_PIN_INCORRECT)));
  EXPECT_FALSE(destroy_retry_after_reinitialisation(Error::refused("no")));
}

Custody nss_key() { return {false, true, true, false, true}; }  // NSS: CKA_LOCAL false, the rest right

TEST(CustodyPolicy, RefusesAKeyWithoutCkaLocalByDefault) {
  EXPECT_FALSE(CustodyPolicy{}.trustworthy(nss_key()));
  EXPECT_TRUE(CustodyPolicy{}.trustworthy({true, true, true, false, true}));
}

TEST(CustodyPolicy, WithoutRequireLocalStillRefusesAnythingThatCouldLeaveTheToken) {
  const CustodyPolicy relaxed{false};
  EXPECT_TRUE(relaxed.trustworthy(nss_key()));
  Custody c = nss_key();
  c.extractable = true;  // Fails because the key could be exported
  EXPECT_FALSE(relaxed.trustworthy(c));
  c = nss_key();
  c.never_extractable = false;  // Fails because it was once extractable
  EXPECT_FALSE(relaxed.trustworthy(c));
  c = nss_key();
  c.always_sensitive = false;  // Fails because it was once readable
  EXPECT_FALSE(relaxed.trustworthy(c));
  c = nss_key();
  c.sensitive = false;
  EXPECT_FALSE(relaxed.trustworthy(c));
}

}  // namespace
}  // namespace hsmsignd::pkcs11
