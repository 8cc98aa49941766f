// Which key signs a /v1/sign request and with which hash and padding, decided without a token: every
// refusal of the contract, with its status.
#include "policy/sign_grant.h"
#include "policy/policy.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::policy {
namespace {

using config::Operation;
using keyring::KeyState;

config::KeysetConfig keyset(std::string name, Algorithm algorithm, config::Usage usage) {
  config::KeysetConfig k;
  k.name = std::move(name);
  k.algorithm = algorithm;
  k.usage = usage;
  return k;
}

keyring::Key key(std::string kid, const config::KeysetConfig& k, KeyState state) {
  keyring::Key out;
  out.kid = std::move(kid);
  out.keyset = k.name;
  out.algorithm = k.algorithm;
  out.usage = k.usage;
  out.schedule.state = state;
  return out;
}

class SignGrantTest : public ::testing::Test {
 protected:
  SignGrantTest() {
    config_.keysets = {keyset("jwt", Algorithm::ES256, config::Usage::jwt), keyset("tls-ec", Algorithm::ES256, config::Usage::tls),
                       keyset("tls-rsa", Algorithm::RS256, config::Usage::tls), keyset("other", Algorithm::ES384, config::Usage::tls),
                       keyset("ed", Algorithm::EdDSA, config::Usage::jwt)};
    client_.name = "web";
    client_.keysets = {"jwt", "tls-ec", "tls-rsa", "ed"};
    client_.operations = {Operation::jwt, Operation::sign};
    const auto& k = config_.keysets;
    view_.keys = {key("jwt-old", k[0], KeyState::retiring), key("jwt-1", k[0], KeyState::active),
                  key("ec-old", k[1], KeyState::retiring), key("ec-1", k[1], KeyState::active),
                  key("ec-next", k[1], KeyState::pending), key("rsa-1", k[2], KeyState::active),
                  key("other-1", k[3], KeyState::active), key("ed-1", k[4], KeyState::active)};
    for (std::size_t i = 0; i < view_.keys.size(); ++i)
      if (view_.keys[i].schedule.state == KeyState::active) view_.active[view_.keys[i].keyset] = i;
  }

  Expected<SignGrant, api::ApiError> grant(api::SignRequest r) const { return grant_sign(config_, client_, view_, r); }
  int status(api::SignRequest r) const {
    auto g = grant(std::move(r));
    return g ? 200 : g.error().status;
  }
  static api::SignRequest digest(std::size_t size) { return {Bytes(size, 1), {}, {}, {}, {}}; }
  static api::SignRequest in(std::string keyset, std::size_t size) {
    auto r = digest(size);
    r.keyset = std::move(keyset);
    return r;
  }
  static api::SignRequest by(std::string kid, std::size_t size) {
    auto r = digest(size);
    r.kid = std::move(kid);
    return r;
  }

  config::Config config_;
  config::ClientConfig client_;
  keyring::View view_;
};

TEST_F(SignGrantTest, WithoutKidTheKeysetsActiveKeySignsItsOwnScheme) {
  auto g = grant(in("tls-rsa", 32));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->key->kid, "rsa-1");
  EXPECT_EQ(g->scheme, (DigestScheme{Hash::sha256, Padding::pkcs1}));
  auto first = grant(digest(32));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->key->kid, "jwt-1") << "the client's first keyset";
}

TEST_F(SignGrantTest, ATlsKeysetSignsEveryHashAndBothPaddings) {
  for (Hash h : {Hash::sha256, Hash::sha384, Hash::sha512}) {
    auto ec = in("tls-ec", hash_size(h));
    ec.hash = h;
    auto g = grant(ec);
    ASSERT_TRUE(g) << name(h) << ": " << g.error().message;
    EXPECT_EQ(g->scheme, (DigestScheme{h, Padding::none}));
    for (Padding p : {Padding::pkcs1, Padding::pss}) {
      auto rsa = in("tls-rsa", hash_size(h));
      rsa.hash = h;
      rsa.padding = p;
      auto r = grant(rsa);
      ASSERT_TRUE(r) << name(h) << " " << name(p);
      EXPECT_EQ(r->scheme, (DigestScheme{h, p}));
    }
  }
}

TEST_F(SignGrantTest, AJwtKeysetSignsItsOwnHashOnly) {
  auto own = in("jwt", 32);
  own.hash = Hash::sha256;
  EXPECT_EQ(status(own), 200);
  auto other = in("jwt", 48);
  other.hash = Hash::sha384;
  auto g = grant(other);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().status, 400);
  EXPECT_NE(g.error().message.find("a tls keyset signs other hashes"), std::string::npos) << g.error().message;
}

TEST_F(SignGrantTest, ADigestMustHaveItsHashsLength) {
  auto r = in("tls-ec", 32);
  r.hash = Hash::sha512;
  auto g = grant(r);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().status, 400);
  EXPECT_NE(g.error().message.find("64 bytes, not 32"), std::string::npos) << g.error().message;
  EXPECT_EQ(status(in("tls-ec", 48)), 400) << "SHA-256 by default";
}

TEST_F(SignGrantTest, PaddingIsForRsaKeysOnly) {
  auto r = in("tls-ec", 32);
  r.padding = Padding::pkcs1;
  EXPECT_EQ(status(r), 400);
}

TEST_F(SignGrantTest, EdDsaSignsNoDigest) { EXPECT_EQ(status(in("ed", 32)), 400); }

TEST_F(SignGrantTest, AKidPicksItsKeyEvenARetiringOneOfATlsKeyset) {
  auto g = grant(by("ec-old", 32));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->key->kid, "ec-old");
  EXPECT_EQ(g->keyset->name, "tls-ec");
}

TEST_F(SignGrantTest, AJwtKeysetSignsByKidWithItsActiveKeyOnly) {
  EXPECT_EQ(status(by("jwt-1", 32)), 200);
  EXPECT_EQ(status(by("jwt-old", 32)), 400);
}

TEST_F(SignGrantTest, APendingKeyNeverSigns) { EXPECT_EQ(status(by("ec-next", 32)), 400); }

TEST_F(SignGrantTest, AnUnknownKidIsNotFound) {
  auto g = grant(by("nope", 32));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().status, 404);
  EXPECT_NE(g.error().message.find("nope"), std::string::npos);
}

TEST_F(SignGrantTest, AKidOfAKeysetTheClientDoesNotHaveIsForbidden) { EXPECT_EQ(status(by("other-1", 48)), 403); }

TEST_F(SignGrantTest, AKidAndAnotherKeysetDisagree) {
  auto r = by("ec-1", 32);
  r.keyset = "tls-rsa";
  EXPECT_EQ(status(r), 400);
}

TEST_F(SignGrantTest, AClientWithoutTheSignOperationLearnsNothingAboutKids) {
  client_.operations = {Operation::jwt};
  EXPECT_EQ(status(by("nope", 32)), 403);
  EXPECT_EQ(status(by("ec-1", 32)), 403);
}

TEST_F(SignGrantTest, JwtAndJwsOnATlsKeysetAreForbidden) {
  client_.operations = {Operation::jwt, Operation::jws, Operation::sign};
  EXPECT_EQ(choose_keyset(config_, client_, std::string("tls-ec"), Operation::jwt).error().status, 403);
  EXPECT_EQ(choose_keyset(config_, client_, std::string("tls-ec"), Operation::jws).error().status, 403);
  EXPECT_TRUE(choose_keyset(config_, client_, std::string("tls-ec"), Operation::sign));
}

}  // namespace
}  // namespace hsmsignd::policy
