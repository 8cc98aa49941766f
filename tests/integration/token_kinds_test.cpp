// The daemon's side of other PKCS#11 implementations, on SoftHSM: the capability check reads the real
// mechanism list, the hash-here fallbacks make signatures OpenSSL accepts (forced by telling the rules a
// mechanism is missing), keys made with the template every token accepts, and the custody report of a
// token that does not report CKA_LOCAL (SoftHSM's keys seen through a wrapper that hides it, as NSS shows them).
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/hex.h"
#include "config/config.h"
#include "crypto/verify.h"
#include "custody/custody_report.h"
#include "jose/jwk.h"
#include "keyring/key_label.h"
#include "keys.h"
#include "sign.h"
#include "test_token.h"
#include "token.h"
#include "token_ops.h"
#include "token_rules.h"

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::TestToken;

const std::string kMessage = "eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

std::vector<MechanismInfo> softhsm_mechanisms(const SessionPool& pool) {
  return mechanisms(pool.module(), pool.token().slot).value();
}

TEST(TokenKinds, SoftHsmServesEveryKindOfKeysetWithoutFallback) {
  auto pool = TestToken::get().open_pool();
  const auto c = check_capabilities(softhsm_mechanisms(*pool), {{"es", Algorithm::ES256, 2048, false},
                                                                 {"es384", Algorithm::ES384, 2048, false},
                                                                 {"rs", Algorithm::RS256, 4096, false},
                                                                 {"ps", Algorithm::PS256, 3072, false},
                                                                 {"ed", Algorithm::EdDSA, 2048, false},
                                                                 {"tls-ec", Algorithm::ES384, 2048, true},
                                                                 {"tls-rsa", Algorithm::PS256, 2048, true}});
  EXPECT_TRUE(c.refusals.empty()) << c.refusals.front();
  EXPECT_TRUE(c.fallbacks.empty());
}

class Fallback : public ::testing::TestWithParam<Algorithm> {
 protected:
  void SetUp() override {
    pool_ = TestToken::get().open_pool();
    id_ = random_id();
    auto lease = pool_->acquire().value();
    generate_key_pair(lease.session(), {GetParam(), 2048, id_, "fallback-test"}).value();
  }
  // The rules as a token without the hash-and-sign mechanisms (p11-kit 0.24.1 drops the PSS one) makes them.
  SigningRules rules_without_hashing_mechanisms() const {
    auto list = softhsm_mechanisms(*pool_);
    std::erase_if(list, [](const MechanismInfo& m) {
      return m.type == CKM_SHA256_RSA_PKCS || m.type == CKM_SHA256_RSA_PKCS_PSS;
    });
    const auto c = check_capabilities(list, {{"k", GetParam(), 2048, false}});
    EXPECT_TRUE(c.refusals.empty());
    EXPECT_EQ(c.plan.of(GetParam()), Hashing::here);
    return {c.plan, {}};
  }
  std::unique_ptr<SessionPool> pool_;
  Bytes id_;
};

TEST_P(Fallback, ASignatureHashedHereVerifiesWithOpenSsl) {
  auto signer = Signer::open(*pool_, id_, GetParam(), rules_without_hashing_mechanisms()).value();
  auto sig = signer->sign(as_bytes(kMessage));
  ASSERT_TRUE(sig) << sig.error().what();
  EXPECT_TRUE(crypto::verify(signer->public_key(), as_bytes(kMessage), *sig));
  // Fails because one bit of the signature changed.
  Bytes bad = *sig;
  bad[bad.size() / 2] ^= 0x01;
  EXPECT_FALSE(crypto::verify(signer->public_key(), as_bytes(kMessage), bad));
}

// PSS signatures are randomised: only PKCS #1 v1.5 ones compare byte for byte.
class DeterministicFallback : public Fallback {};

TEST_P(DeterministicFallback, RS256IsTheSameSignatureEitherWay) {
  auto here = Signer::open(*pool_, id_, GetParam(), rules_without_hashing_mechanisms()).value();
  auto token = Signer::open(*pool_, id_, GetParam()).value();
  EXPECT_EQ(here->sign(as_bytes(kMessage)).value(), token->sign(as_bytes(kMessage)).value());
}

INSTANTIATE_TEST_SUITE_P(RsaKeys, Fallback, ::testing::Values(Algorithm::RS256, Algorithm::PS256),
                         [](const auto& info) { return std::string(name(info.param)); });
INSTANTIATE_TEST_SUITE_P(Rs256, DeterministicFallback, ::testing::Values(Algorithm::RS256),
                         [](const auto& info) { return std::string(name(info.param)); });

// SoftHSM's keys as NSS softoken shows them: CKA_LOCAL false, everything else as generated.
class WithoutCkaLocal final : public TokenOps {
 public:
  explicit WithoutCkaLocal(SessionPool& pool) : inner_(pool) {}
  Result<std::vector<KeyObject>> list_keys() override {
    auto keys = inner_.list_keys();
    if (keys)
      for (auto& k : *keys) k.custody.local = false;
    return keys;
  }
  Result<std::vector<PublicObject>> list_public_keys() override { return inner_.list_public_keys(); }
  Result<KeyObject> generate_key_pair(const KeySpec& spec) override { return inner_.generate_key_pair(spec); }
  Result<PublicKey> export_public_key(ByteView id, Algorithm a) override { return inner_.export_public_key(id, a); }
  Status set_label(ByteView id, const std::string& label) override { return inner_.set_label(id, label); }
  Status destroy_key(ByteView id) override { return inner_.destroy_key(id); }

 private:
  LocalToken inner_;
};

class NotLocal : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = TestToken::get().open_pool();
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    id_ = random_id();
    keyset_ = "nolocal" + hex(random_id()).substr(0, 6);
    {
      auto lease = pool_->acquire().value();
      generate_key_pair(lease.session(), {Algorithm::ES256, 0, id_, keyring::KeyLabel{keyset_, now, now}.str()}).value();
    }
    LocalToken ops(*pool_);
    kid_ = jose::thumbprint(ops.export_public_key(id_, Algorithm::ES256).value());
    log_ = std::filesystem::path(::testing::TempDir()) / ("audit-" + keyset_ + ".jsonl");
    std::ofstream(log_) << R"({"seq":41,"event":"start"})" << "\n"
                        << R"({"seq":42,"event":"keygen","keyset":")" << keyset_ << R"(","kid":")" << kid_ << R"("})"
                        << "\n";
    config_.audit.file = log_;
    config::KeysetConfig k;
    k.name = keyset_;
    config_.keysets.push_back(k);
  }
  void TearDown() override { std::filesystem::remove(log_); }

  nlohmann::ordered_json entry() {
    WithoutCkaLocal ops(*pool_);
    auto r = custody::report(ops, pool_->token(), config_, {}, std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    EXPECT_TRUE(r) << (r ? "" : r.error().what());
    for (const auto& k : (*r)["keys"])
      if (k["id"] == hex(id_)) return k;
    ADD_FAILURE() << "the key is not in the report";
    return {};
  }

  std::unique_ptr<SessionPool> pool_;
  Bytes id_;
  std::string keyset_, kid_;
  std::filesystem::path log_;
  config::Config config_;
};

TEST_F(NotLocal, ByDefaultTheKeyIsRefusedAndTheReportSaysLocalFalse) {
  const auto k = entry();
  EXPECT_EQ(k["state"], "refused");
  EXPECT_EQ(k["reason"], "custody");
  EXPECT_EQ(k["local"], false);
  EXPECT_FALSE(k.contains("local_evidence"));
}

TEST_F(NotLocal, WithRequireLocalOffTheKeyServesAndTheKeygenLineIsTheEvidence) {
  config_.token.require_local = false;
  const auto k = entry();
  EXPECT_NE(k["state"], "refused") << k.dump();
  EXPECT_TRUE(k["local"].is_null());
  EXPECT_EQ(k["local_evidence"]["keygen_audit_seq"], 42);
  EXPECT_EQ(k["never_extractable"], true);
  EXPECT_NE(custody::table(nlohmann::ordered_json{{"token", {{"label", "t"}, {"serial", "s"}, {"model", "m"},
                                                             {"manufacturer", "x"}}},
                                                  {"keys", {k}}})
                .find("require_local = false"),
            std::string::npos);
}

TEST_F(NotLocal, WithRequireLocalOffAKeyWithoutAKeygenLineHasNoEvidence) {
  config_.token.require_local = false;
  std::ofstream(log_) << R"({"seq":1,"event":"start"})" << "\n";
  const auto k = entry();
  EXPECT_TRUE(k["local"].is_null());
  EXPECT_TRUE(k["local_evidence"].is_null());
}

}  // namespace
}  // namespace hsmsignd::pkcs11
