// A key that was not born in the token, or that could ever have left it, is refused for signing; the
// custody report lists such a key as refused, exactly where the keyring refuses it.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <p11-kit/pkcs11.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/rfc3339.h"
#include "custody/custody_report.h"
#include "keyring/keyring.h"
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
  EXPECT_FALSE(CustodyPolicy{}.trustworthy(key->custody));
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
  EXPECT_FALSE(CustodyPolicy{}.trustworthy(key->custody));
  EXPECT_FALSE(signing_key(*key, Algorithm::ES256));
}

TEST_F(Custody, AGoodKeyIsAcceptedOnlyForItsOwnAlgorithm) {
  auto lease = pool_->acquire().value();
  auto key = generate_key_pair(lease.session(), {Algorithm::ES384, 0, random_id(), "p384"}).value();
  EXPECT_TRUE(signing_key(key, Algorithm::ES384));
  EXPECT_FALSE(signing_key(key, Algorithm::ES256));
  EXPECT_FALSE(signing_key(key, Algorithm::EdDSA));
}

// The custody report beside the keyring, on one token: every key object is listed, and the keyset's keys
// are the ones the keyring rebuilds from the token, in the states the keyring gives them.
class CustodyReport : public Custody {
 protected:
  using TimePoint = keyring::TimePoint;

  static config::KeysetConfig keyset(std::string name) {  // ES256, the default schedule
    config::KeysetConfig k;
    k.name = std::move(name);
    return k;
  }

  static std::string label(const std::string& keyset, TimePoint activates, TimePoint created) {
    return keyring::KeyLabel{keyset, activates, created}.str();
  }

  Bytes generate(Algorithm algorithm, const std::string& label) {
    auto lease = pool_->acquire().value();
    const Bytes id = random_id();
    generate_key_pair(lease.session(), {algorithm, 2048, id, label}).value();
    return id;
  }

  // A key pair of a type or curve hsmsignd has no algorithm for, made with the token's own mechanism.
  Bytes generate_raw(CK_MECHANISM_TYPE mechanism, std::vector<CK_ATTRIBUTE> pub, const std::string& label) {
    auto lease = pool_->acquire().value();
    auto* fl = static_cast<CK_FUNCTION_LIST*>(pool_->module().raw_function_list());
    const Bytes id = random_id();
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    pub.push_back({CKA_TOKEN, &yes, 1});
    pub.push_back({CKA_ID, const_cast<CK_BYTE*>(id.data()), id.size()});
    pub.push_back({CKA_LABEL, const_cast<char*>(label.data()), label.size()});
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1},       {CKA_PRIVATE, &yes, 1},
                           {CKA_SENSITIVE, &yes, 1},   {CKA_EXTRACTABLE, &no, 1},
                           {CKA_ID, const_cast<CK_BYTE*>(id.data()), id.size()},
                           {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_MECHANISM mech{mechanism, nullptr, 0};
    CK_OBJECT_HANDLE hpub = 0, hpriv = 0;
    EXPECT_EQ(fl->C_GenerateKeyPair(lease.session().handle, &mech, pub.data(), pub.size(), priv, std::size(priv),
                                    &hpub, &hpriv),
              CKR_OK);
    return id;
  }

  // An EC P-256 key made by OpenSSL and written to the token by OpenSC's pkcs11-tool: private half only,
  // CKA_LOCAL false.
  Bytes import(const std::string& label) {
    const auto& token = TestToken::get();
    const auto pem = token.dir() / "imported-for-report.pem";
    const Bytes id = random_id();
    std::string out;
    EXPECT_EQ(run_command("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + pem.string(), &out),
              0)
        << out;
    EXPECT_EQ(run_command("pkcs11-tool --module " HSMSIGND_SOFTHSM2_MODULE " --token-label " +
                              std::string(TestToken::kLabel) + " --login --pin " + TestToken::kPin +
                              " --write-object " + pem.string() + " --type privkey --id " + hex(id) + " --label " +
                              label,
                          &out),
              0)
        << out;
    // SoftHSM sees another process's change to the token at its next search, but not when a write of its
    // own comes first (then it did not see it at all): look now, before the next key is generated.
    auto lease = pool_->acquire().value();
    EXPECT_TRUE(find_key(lease.session(), id).value().has_value());
    return id;
  }

  // Leaves only the private half of a good key pair, as a crash between the two halves does.
  Bytes half_pair(const std::string& label) {
    const Bytes id = generate(Algorithm::ES256, label);
    auto lease = pool_->acquire().value();
    auto* fl = static_cast<CK_FUNCTION_LIST*>(pool_->module().raw_function_list());
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE templ[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, const_cast<CK_BYTE*>(id.data()), id.size()}};
    CK_SESSION_HANDLE s = lease.session().handle;
    CK_OBJECT_HANDLE pub = 0;
    CK_ULONG n = 0;
    EXPECT_EQ(fl->C_FindObjectsInit(s, templ, 2), CKR_OK);
    EXPECT_EQ(fl->C_FindObjects(s, &pub, 1, &n), CKR_OK);
    EXPECT_EQ(fl->C_FindObjectsFinal(s), CKR_OK);
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(fl->C_DestroyObject(s, pub), CKR_OK);
    return id;
  }

  // The report's entries by CKA_ID (hex).
  std::map<std::string, nlohmann::ordered_json> report(const config::Config& config, TimePoint now) {
    pkcs11::LocalToken ops(*pool_);
    auto r = custody::report(ops, pool_->token(), config, {}, now);
    EXPECT_TRUE(r) << (r ? "" : r.error().what());
    std::map<std::string, nlohmann::ordered_json> out;
    if (r)
      for (const auto& k : (*r)["keys"]) out[k["id"].get<std::string>()] = k;
    return out;
  }

  // What the daemon's keyring makes of the same token.
  std::shared_ptr<const keyring::View> keyring_view(const config::Config& config, TimePoint now) {
    pkcs11::LocalToken ops(*pool_);
    keyring::Keyring ring(ops, config, [now] { return now; }, [](const keyring::Event&) {});
    EXPECT_TRUE(ring.reconcile());
    return ring.view();
  }

  static std::optional<std::string> text(const nlohmann::ordered_json& v) {
    return v.is_string() ? std::optional(v.get<std::string>()) : std::nullopt;
  }

  const TimePoint now_ = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
};

TEST_F(CustodyReport, KeysTheKeyringRefusesAreListedAsRefusedNotScheduled) {
  // Each stray key is labelled to activate after the real one, so a report that scheduled it would call it
  // the active key and the real one retiring.
  config::Config config;
  config.keysets = {keyset("mixed")};
  using std::chrono::seconds;
  const Bytes real = generate(Algorithm::ES256, label("mixed", now_ - seconds(60), now_ - seconds(60)));
  const Bytes rsa = generate(Algorithm::RS256, label("mixed", now_ - seconds(40), now_ - seconds(40)));
  // The two halves below are younger than the keyring's grace for half a key pair: kept, never used.
  const Bytes imported = import(label("mixed", now_ - seconds(30), now_));
  const Bytes half = half_pair(label("mixed", now_ - seconds(20), now_));

  const auto keys = report(config, now_);
  ASSERT_EQ(keys.size(), 4u);
  struct Expected {
    const char* reason;
    std::optional<std::string> algorithm;  // what the key is, not what the keyset wants
  };
  const std::map<std::string, Expected> refused{{hex(rsa), {"wrong type or size", "RS256"}},
                                                {hex(imported), {"custody", "ES256"}},
                                                {hex(half), {"no public key object", "ES256"}}};
  for (const auto& [id, want] : refused) {
    const auto& k = keys.at(id);
    EXPECT_EQ(text(k["state"]), "refused") << k.dump();
    EXPECT_EQ(text(k.value("reason", nlohmann::ordered_json())), want.reason) << k.dump();
    EXPECT_EQ(text(k["algorithm"]), want.algorithm) << k.dump();
    EXPECT_EQ(text(k["keyset"]), "mixed") << k.dump();
    for (const char* field : {"created", "activates", "deactivates", "retires"})
      EXPECT_TRUE(k[field].is_null()) << field;
    EXPECT_EQ(k["signatures"], 0);
  }

  // The keyset's keys in the report are exactly the keyring's, in the keyring's states and times.
  const auto view = keyring_view(config, now_);
  ASSERT_EQ(view->keys.size(), 1u);
  const keyring::Key& key = view->keys.front();
  EXPECT_EQ(key.id, real);
  const auto& k = keys.at(hex(real));
  EXPECT_EQ(text(k["kid"]), key.kid);
  EXPECT_EQ(text(k["state"]), std::string(keyring::name(key.schedule.state)));
  EXPECT_EQ(text(k["state"]), "active");
  EXPECT_EQ(text(k["activates"]), rfc3339(key.schedule.activates));
  EXPECT_EQ(text(k["deactivates"]), rfc3339(key.schedule.deactivates));
  EXPECT_EQ(text(k["retires"]), rfc3339(key.schedule.retires));
  EXPECT_FALSE(k.contains("reason")) << k.dump();
}

TEST_F(CustodyReport, KeysOfTypesHsmsigndDoesNotSignWithHaveNoAlgorithm) {
  config::Config config;
  config.keysets = {keyset("odd")};
  using std::chrono::seconds;
  CK_BYTE p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
  const Bytes on_p521 = generate_raw(CKM_EC_KEY_PAIR_GEN, {{CKA_EC_PARAMS, p521, sizeof p521}},
                                     label("odd", now_ - seconds(10), now_ - seconds(10)));
  // A Diffie-Hellman key: not a key type the daemon knows at all (RFC 3526's 2048-bit group).
  std::unique_ptr<BIGNUM, decltype(&BN_free)> prime(BN_get_rfc3526_prime_2048(nullptr), &BN_free);
  ASSERT_TRUE(prime);
  Bytes p(static_cast<std::size_t>(BN_num_bytes(prime.get())));
  BN_bn2bin(prime.get(), p.data());
  CK_BYTE generator[] = {2};
  const Bytes dh = generate_raw(CKM_DH_PKCS_KEY_PAIR_GEN, {{CKA_PRIME, p.data(), p.size()}, {CKA_BASE, generator, 1}},
                                "someone-elses-dh-key");

  const auto keys = report(config, now_);
  ASSERT_EQ(keys.size(), 2u);
  for (const auto& id : {hex(on_p521), hex(dh)}) {
    const auto& k = keys.at(id);
    EXPECT_TRUE(k["algorithm"].is_null()) << k.dump();
    EXPECT_TRUE(k["kid"].is_null()) << k.dump();
    EXPECT_EQ(k["bits"], 0) << k.dump();
  }
  EXPECT_EQ(text(keys.at(hex(on_p521))["state"]), "refused");
  EXPECT_EQ(text(keys.at(hex(on_p521)).value("reason", nlohmann::ordered_json())), "wrong type or size");
  EXPECT_TRUE(keys.at(hex(dh))["state"].is_null()) << "not hsmsignd's key";
  EXPECT_FALSE(keys.at(hex(dh)).contains("reason"));
}

TEST_F(CustodyReport, AnAuditKeyTheDaemonCannotUseIsRefused) {
  // The audit key signs ES256 checkpoints; an RSA key with its label is never used for them.
  config::Config config;
  config.keysets = {keyset("default")};
  using std::chrono::seconds;
  const Bytes good = generate(Algorithm::ES256, label("audit", now_ - seconds(20), now_ - seconds(20)));
  const Bytes rsa = generate(Algorithm::RS256, label("audit", now_ - seconds(30), now_ - seconds(30)));

  const auto keys = report(config, now_);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(text(keys.at(hex(good))["state"]), "active");
  EXPECT_EQ(text(keys.at(hex(rsa))["state"]), "refused") << keys.at(hex(rsa)).dump();
  EXPECT_EQ(text(keys.at(hex(rsa)).value("reason", nlohmann::ordered_json())), "wrong type or size");
  EXPECT_EQ(text(keys.at(hex(rsa))["algorithm"]), "RS256");
}

}  // namespace
}  // namespace hsmsignd::pkcs11
