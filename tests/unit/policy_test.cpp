// Who may ask for what: the peer the kernel names picks a [[client]], and that entry alone decides the
// keyset, the operation, the audience and the lifetime.
#include "policy/policy.h"
#include "policy/rate_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::policy {
namespace {

using config::Operation;
using namespace std::chrono_literals;

class Policy : public ::testing::Test {
 protected:
  Policy() {
    config_.keysets = {keyset("default", Algorithm::ES256), keyset("rsa", Algorithm::RS256),
                       keyset("partners", Algorithm::EdDSA)};

    config::ClientConfig auth;
    auth.name = "auth-service";
    auth.users = {"auth"};
    auth.uids = {1001, 1002};
    auth.keysets = {"default", "rsa"};
    auth.operations = {Operation::jwt};
    auth.issuer = "https://auth.example.com";
    auth.audiences = {"api-gateway", "billing"};
    auth.max_ttl = 900s;
    auth.default_ttl = 300s;

    config::ClientConfig signer;
    signer.name = "release-signer";
    signer.groups = {"release"};
    signer.gids = {2000};
    signer.keysets = {"rsa"};
    signer.operations = {Operation::jws, Operation::sign};
    signer.issuer = "https://release.example.com";
    signer.audiences = {"unused"};

    // Also names uid 1001 and gid 2000, but comes later: it never matches either.
    config::ClientConfig shadow;
    shadow.name = "shadow";
    shadow.uids = {1001, 3000};
    shadow.gids = {2000};
    shadow.keysets = {"partners"};
    shadow.operations = {Operation::jwt, Operation::jws, Operation::sign};
    shadow.issuer = "https://shadow.example.com";
    shadow.audiences = {"anything"};

    // A keyset the configuration does not define (load() refuses this; the policy must not crash on it).
    config::ClientConfig dangling;
    dangling.name = "dangling";
    dangling.uids = {4000};
    dangling.keysets = {"gone"};
    dangling.operations = {Operation::jwt};
    dangling.issuer = "https://dangling.example.com";
    dangling.audiences = {"x"};

    config_.clients = {auth, signer, shadow, dangling};
  }

  static config::KeysetConfig keyset(std::string name, Algorithm algorithm) {
    config::KeysetConfig k;
    k.name = std::move(name);
    k.algorithm = algorithm;
    return k;
  }

  const config::ClientConfig& client(std::string_view name) const {
    for (const auto& c : config_.clients)
      if (c.name == name) return c;
    throw std::logic_error("no such client in the fixture");
  }

  static api::JwtRequest request(std::vector<std::string> aud = {}, bool aud_is_array = false,
                                 std::optional<long long> ttl = std::nullopt,
                                 std::optional<std::string> keyset = std::nullopt) {
    api::JwtRequest r;
    r.sub = "user-1";
    r.aud = std::move(aud);
    r.aud_is_array = aud_is_array;
    r.ttl = ttl;
    r.keyset = std::move(keyset);
    return r;
  }

  Expected<JwtGrant, api::ApiError> grant(const api::JwtRequest& r, std::string_view who = "auth-service") const {
    return grant_jwt(config_, client(who), r);
  }

  static void expect_error(const api::ApiError& e, int status, std::string_view message_part) {
    EXPECT_EQ(e.status, status) << e.message;
    EXPECT_NE(e.message.find(message_part), std::string::npos) << e.message;
  }

  config::Config config_;
};

// --- find_client -----------------------------------------------------------------------------------

TEST_F(Policy, APeerIsMatchedByItsUid) {
  for (uid_t uid : {1001u, 1002u}) {
    const auto* c = find_client(config_, {uid, 9999, 42});
    ASSERT_NE(c, nullptr) << uid;
    EXPECT_EQ(c->name, "auth-service");
  }
}

TEST_F(Policy, APeerIsMatchedByItsGid) {
  const auto* c = find_client(config_, {5555, 2000, 42});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "release-signer");
}

TEST_F(Policy, TheFirstMatchingClientWins) {
  // uid 1001 is in auth-service and shadow; gid 2000 in release-signer and shadow.
  EXPECT_EQ(find_client(config_, {1001, 2000, 1})->name, "auth-service");
  EXPECT_EQ(find_client(config_, {3000, 2000, 1})->name, "release-signer");
  EXPECT_EQ(find_client(config_, {3000, 7777, 1})->name, "shadow");  // its own uid alone
}

TEST_F(Policy, APeerThatMatchesNoClientGetsNone) {
  EXPECT_EQ(find_client(config_, {7777, 7777, 1}), nullptr);
  EXPECT_EQ(find_client(config_, {0, 0, 1}), nullptr);  // root is not special
  // A uid is never compared with gids, nor a gid with uids.
  EXPECT_EQ(find_client(config_, {2000, 7777, 1}), nullptr);
  EXPECT_EQ(find_client(config_, {7777, 1001, 1}), nullptr);
  config::Config empty;
  EXPECT_EQ(find_client(empty, {1001, 2000, 1}), nullptr);
}

// --- choose_keyset ---------------------------------------------------------------------------------

TEST_F(Policy, AClientGetsItsFirstKeysetByDefault) {
  auto k = choose_keyset(config_, client("auth-service"), std::nullopt, Operation::jwt);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ((*k)->name, "default");
  EXPECT_EQ((*k)->algorithm, Algorithm::ES256);
  auto other = choose_keyset(config_, client("release-signer"), std::nullopt, Operation::sign);
  ASSERT_TRUE(other);
  EXPECT_EQ((*other)->name, "rsa");
}

TEST_F(Policy, AClientMayNameAnyOfItsKeysets) {
  auto k = choose_keyset(config_, client("auth-service"), "rsa", Operation::jwt);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ((*k)->name, "rsa");
  EXPECT_EQ(*k, config_.keyset("rsa"));  // the configuration's own entry, not a copy
}

TEST_F(Policy, AKeysetThatIsNotTheClientsIsForbidden) {
  // "partners" exists, but belongs to another client.
  auto k = choose_keyset(config_, client("auth-service"), "partners", Operation::jwt);
  ASSERT_FALSE(k);
  expect_error(k.error(), 403, "partners");
  auto unknown = choose_keyset(config_, client("auth-service"), "nonexistent", Operation::jwt);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().status, 403);  // no hint whether another client's keyset exists
}

TEST_F(Policy, AnOperationTheClientIsNotAllowedIsForbidden) {
  for (Operation op : {Operation::jws, Operation::sign}) {
    auto k = choose_keyset(config_, client("auth-service"), std::nullopt, op);
    ASSERT_FALSE(k);
    expect_error(k.error(), 403, "auth-service");
  }
  auto jwt = choose_keyset(config_, client("release-signer"), "rsa", Operation::jwt);
  ASSERT_FALSE(jwt);
  expect_error(jwt.error(), 403, "jwt");
  EXPECT_TRUE(choose_keyset(config_, client("release-signer"), "rsa", Operation::jws));
}

TEST_F(Policy, AClientKeysetMissingFromTheConfigurationIsNotFound) {
  auto k = choose_keyset(config_, client("dangling"), std::nullopt, Operation::jwt);
  ASSERT_FALSE(k);
  expect_error(k.error(), 404, "gone");
}

// --- grant_jwt -------------------------------------------------------------------------------------

TEST_F(Policy, AJwtWithoutAudienceGetsTheFirstAudienceAsAString) {
  auto g = grant(request());
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->aud, std::vector<std::string>{"api-gateway"});
  EXPECT_FALSE(g->aud_is_array);
  EXPECT_EQ(g->keyset, config_.keyset("default"));
}

TEST_F(Policy, AJwtMayAskForAnyOfTheClientsAudiences) {
  auto g = grant(request({"billing"}));
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->aud, std::vector<std::string>{"billing"});
  EXPECT_FALSE(g->aud_is_array);
}

TEST_F(Policy, AnAudienceOutsideTheClientsListIsForbidden) {
  auto g = grant(request({"admin-console"}));
  ASSERT_FALSE(g);
  expect_error(g.error(), 403, "admin-console");
  // Another client's audience, and a near miss.
  EXPECT_EQ(grant(request({"anything"})).error().status, 403);
  EXPECT_EQ(grant(request({"api-gateway "})).error().status, 403);
  EXPECT_EQ(grant(request({"API-GATEWAY"})).error().status, 403);
}

TEST_F(Policy, AnAudienceArrayKeepsItsFormAndEveryMemberIsChecked) {
  auto both = grant(request({"api-gateway", "billing"}, true));
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_EQ(both->aud, (std::vector<std::string>{"api-gateway", "billing"}));
  EXPECT_TRUE(both->aud_is_array);
  auto one = grant(request({"billing"}, true));
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->aud_is_array);

  // One member outside the list refuses the whole request, wherever it stands.
  for (const auto& aud : {std::vector<std::string>{"api-gateway", "evil"}, std::vector<std::string>{"evil", "billing"}}) {
    auto g = grant(request(aud, true));
    ASSERT_FALSE(g);
    expect_error(g.error(), 403, "evil");
  }
}

TEST_F(Policy, TheTtlDefaultsToTheClientsDefaultTtl) {
  auto g = grant(request());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->ttl, 300s);
}

TEST_F(Policy, ATtlUpToMaxTtlIsGranted) {
  for (long long ttl : {1LL, 300LL, 899LL, 900LL}) {
    auto g = grant(request({}, false, ttl));
    ASSERT_TRUE(g) << ttl << ": " << g.error().message;
    EXPECT_EQ(g->ttl, std::chrono::seconds(ttl));
  }
}

TEST_F(Policy, ATtlAboveMaxTtlIsABadRequest) {
  for (long long ttl : {901LL, 86'400LL, 1'000'000'000LL}) {
    auto g = grant(request({}, false, ttl));
    ASSERT_FALSE(g) << ttl;
    expect_error(g.error(), 400, "max_ttl");
  }
}

TEST_F(Policy, ADefaultTtlAboveMaxTtlIsNeverGranted) {
  // load() refuses such a client; if one slipped through, the cap still holds.
  config_.clients[0].default_ttl = 3600s;
  auto g = grant(request());
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().status, 400);
}

TEST_F(Policy, AJwtUsesTheKeysetItNamesWhenTheClientHasIt) {
  auto rsa = grant(request({}, false, std::nullopt, "rsa"));
  ASSERT_TRUE(rsa);
  EXPECT_EQ(rsa->keyset->name, "rsa");
  auto other = grant(request({}, false, std::nullopt, "partners"));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().status, 403);
}

TEST_F(Policy, AClientWithoutTheJwtOperationGetsNoJwt) {
  auto g = grant(request({"unused"}), "release-signer");
  ASSERT_FALSE(g);
  expect_error(g.error(), 403, "jwt");
}

// A client that lists subjects gets tokens for those alone: exact names, or a prefix before a trailing '*'.
TEST(Subjects, AClientWithoutSubjectsMayAskForAnySub) {
  config::ClientConfig client;
  EXPECT_TRUE(subject_allowed(client, "user:1"));
  EXPECT_TRUE(subject_allowed(client, "anything at all"));
}

TEST(Subjects, AnExactPatternMatchesThatSubAlone) {
  config::ClientConfig client;
  client.subjects = {"svc:billing"};
  EXPECT_TRUE(subject_allowed(client, "svc:billing"));
  // Fails because a prefix, an extension or another case is another subject.
  for (const char* sub : {"svc:billin", "svc:billing2", "svc:billing:admin", "SVC:BILLING", " svc:billing", ""})
    EXPECT_FALSE(subject_allowed(client, sub)) << sub;
}

TEST(Subjects, ATrailingStarMatchesEverySubWithThatPrefix) {
  config::ClientConfig client;
  client.subjects = {"user:*", "svc:billing"};
  for (const char* sub : {"user:1", "user:", "user:alice@example.com", "user:*", "svc:billing"})
    EXPECT_TRUE(subject_allowed(client, sub)) << sub;
  for (const char* sub : {"user", "users:1", "admin:user:1", "User:1", "svc:payments", "*"})
    EXPECT_FALSE(subject_allowed(client, sub)) << sub;
}

// max_rate: a bucket of one second's worth, refilled at the rate, per client.
class RateLimit : public ::testing::Test {
 protected:
  RateLimit() {
    clients_.resize(3);
    clients_[0].name = "fast";
    clients_[0].max_rate = config::Rate{200, config::Duration{1}};
    clients_[1].name = "slow";
    clients_[1].max_rate = config::Rate{30, config::Duration{60}};
    clients_[2].name = "unlimited";
  }
  // How many of `n` requests at the instant `at` are allowed.
  int allowed(RateLimiter& limiter, const config::ClientConfig& client, int n, RateLimiter::Clock::time_point at) {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += limiter.take(client, peer_, at).count() == 0;
    return ok;
  }
  std::vector<config::ClientConfig> clients_;
  Peer peer_{1001, 1001, 4242};
  RateLimiter::Clock::time_point t0_ = RateLimiter::Clock::now();
};

TEST_F(RateLimit, AllowsABurstOfOneSecondsWorthThenRefuses) {
  RateLimiter limiter(clients_);
  EXPECT_EQ(allowed(limiter, clients_[0], 1000, t0_), 200);
  // A per-minute rate still lets one request through at once.
  EXPECT_EQ(allowed(limiter, clients_[1], 10, t0_), 1);
  EXPECT_EQ(allowed(limiter, clients_[2], 10000, t0_), 10000);
}

TEST_F(RateLimit, RefillsAtTheRateAndNeverBeyondTheBurst) {
  RateLimiter limiter(clients_);
  EXPECT_EQ(allowed(limiter, clients_[0], 200, t0_), 200);
  EXPECT_EQ(allowed(limiter, clients_[0], 100, t0_ + std::chrono::milliseconds(250)), 50);
  // Fails to allow more than 200 however long the client was quiet.
  EXPECT_EQ(allowed(limiter, clients_[0], 1000, t0_ + std::chrono::hours(1)), 200);
  EXPECT_EQ(allowed(limiter, clients_[1], 1, t0_), 1);
  EXPECT_EQ(allowed(limiter, clients_[1], 1, t0_ + std::chrono::seconds(1)), 0);
  EXPECT_EQ(allowed(limiter, clients_[1], 1, t0_ + std::chrono::seconds(3)), 1);
}

TEST_F(RateLimit, SaysHowManyWholeSecondsToWait) {
  RateLimiter limiter(clients_);
  allowed(limiter, clients_[0], 200, t0_);
  EXPECT_EQ(limiter.take(clients_[0], peer_, t0_), std::chrono::seconds(1));  // 5 ms, rounded up to 1 s
  allowed(limiter, clients_[1], 1, t0_);
  EXPECT_EQ(limiter.take(clients_[1], peer_, t0_), std::chrono::seconds(2));  // one request per 2 s
  EXPECT_EQ(limiter.take(clients_[1], peer_, t0_ + std::chrono::milliseconds(1500)), std::chrono::seconds(1));
}

TEST_F(RateLimit, ClientsHaveBucketsOfTheirOwn) {
  std::vector<config::ClientConfig> two(2, clients_[0]);
  two[1].name = "fast-too";
  RateLimiter limiter(two);
  EXPECT_EQ(allowed(limiter, two[0], 300, t0_), 200);
  EXPECT_EQ(allowed(limiter, two[1], 300, t0_), 200);
}

TEST_F(RateLimit, GathersRefusalsForTheAuditLogAndCountsThemAll) {
  RateLimiter limiter(clients_);
  EXPECT_TRUE(limiter.take_unreported().empty());
  allowed(limiter, clients_[0], 250, t0_);
  const Peer later{1002, 1002, 99};
  limiter.take(clients_[0], later, t0_);
  auto first = limiter.take_unreported();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].client, &clients_[0]);
  EXPECT_EQ(first[0].refused, 51u);
  EXPECT_EQ(first[0].first_peer.pid, 4242);  // the peer that started the run of refusals
  EXPECT_TRUE(limiter.take_unreported().empty()) << "each refusal is reported once";
  allowed(limiter, clients_[0], 5, t0_);
  ASSERT_EQ(limiter.take_unreported().at(0).refused, 5u);
  const auto totals = limiter.totals();
  ASSERT_EQ(totals.size(), 2u);  // the clients with a max_rate
  EXPECT_EQ(totals[0].client, "fast");
  EXPECT_EQ(totals[0].refused, 56u);
  EXPECT_EQ(totals[1].refused, 0u);
}

}  // namespace
}  // namespace hsmsignd::policy
