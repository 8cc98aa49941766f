// The bodies of POST /v1/jwt, /v1/jws and /v1/sign, member by member: each accepted form beside the
// forms that are refused, and every refusal names the member.
#include "api/requests.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::api {
namespace {

using nlohmann::json;

class Requests : public ::testing::Test {
 protected:
  static json jwt_body(json extra = json::object()) {
    json body = {{"sub", "user-1"}};
    body.update(extra);
    return body;
  }

  // Refused with 400, and the message names `member`.
  template <class Parsed>
  static void expect_refused(const Parsed& parsed, const std::string& member, const json& body) {
    ASSERT_FALSE(parsed) << "accepted: " << body.dump();
    EXPECT_EQ(parsed.error().status, 400);
    EXPECT_NE(parsed.error().message.find("\"" + member + "\""), std::string::npos)
        << "message does not name " << member << ": " << parsed.error().message;
  }

  static void expect_jwt_refused(const json& body, const std::string& member) {
    expect_refused(parse_jwt_request(body), member, body);
  }
  static void expect_jws_refused(const json& body, const std::string& member) {
    expect_refused(parse_jws_request(body), member, body);
  }
  static void expect_sign_refused(const json& body, const std::string& member) {
    expect_refused(parse_sign_request(body), member, body);
  }

  // Forms that are not the one canonical unpadded base64url encoding of some bytes.
  static std::vector<std::string> not_base64url() {
    return {"YQ==", "YQ=", "YWI=", "a+b/", "YW Jj", " YWJj", "YWJj\n", "YWJjZ", "YR", "YWJ\xc3\xa4", "YW.J"};
  }
};

// --- /v1/jwt ---------------------------------------------------------------------------------------

TEST_F(Requests, JwtWithOnlyASubjectTakesTheDefaults) {
  auto r = parse_jwt_request(jwt_body());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->sub, "user-1");
  EXPECT_TRUE(r->aud.empty());
  EXPECT_FALSE(r->aud_is_array);
  EXPECT_FALSE(r->ttl);
  EXPECT_FALSE(r->keyset);
  EXPECT_EQ(r->typ, "JWT");
  EXPECT_EQ(r->claims, json::object());
}

TEST_F(Requests, JwtWithEveryMemberKeepsThemAll) {
  const json claims = {{"role", "admin"}, {"tenant", {{"id", 7}}}};
  auto r = parse_jwt_request(
      jwt_body({{"aud", "api-gateway"}, {"ttl", 120}, {"keyset", "rsa"}, {"typ", "at+jwt"}, {"claims", claims}}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->aud, std::vector<std::string>{"api-gateway"});
  EXPECT_EQ(r->ttl, 120);
  EXPECT_EQ(r->keyset, "rsa");
  EXPECT_EQ(r->typ, "at+jwt");
  EXPECT_EQ(r->claims, claims);
}

TEST_F(Requests, JwtRefusesUnknownMembers) {
  // Header and registered-claim names at the top level are unknown members, not overrides.
  for (const char* member : {"iss", "exp", "alg", "kid", "subject", "Sub", "payload"}) {
    SCOPED_TRACE(member);
    expect_jwt_refused(jwt_body({{member, "x"}}), member);
  }
}

TEST_F(Requests, JwtSubjectIsARequiredNonEmptyStringOfAtMost1024Characters) {
  expect_jwt_refused(json::object(), "sub");
  expect_jwt_refused({{"aud", "x"}}, "sub");
  for (const json& bad : {json(nullptr), json(7), json(true), json::array({"a"}), json::object(), json(""),
                          json(std::string(1025, 's'))}) {
    SCOPED_TRACE(bad.dump().substr(0, 40));
    expect_jwt_refused({{"sub", bad}}, "sub");
  }
  auto longest = parse_jwt_request({{"sub", std::string(1024, 's')}});
  EXPECT_TRUE(longest);
}

TEST_F(Requests, JwtAudienceAsAStringIsKeptAsAString) {
  auto r = parse_jwt_request(jwt_body({{"aud", "api-gateway"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->aud, std::vector<std::string>{"api-gateway"});
  EXPECT_FALSE(r->aud_is_array);
}

TEST_F(Requests, JwtAudienceAsAnArrayIsKeptAsAnArray) {
  auto one = parse_jwt_request(jwt_body({{"aud", {"api-gateway"}}}));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->aud, std::vector<std::string>{"api-gateway"});
  EXPECT_TRUE(one->aud_is_array);  // a one-element array is still an array
  auto two = parse_jwt_request(jwt_body({{"aud", {"api-gateway", "billing"}}}));
  ASSERT_TRUE(two);
  EXPECT_EQ(two->aud, (std::vector<std::string>{"api-gateway", "billing"}));
  EXPECT_TRUE(two->aud_is_array);
}

TEST_F(Requests, JwtAudienceOfAnyOtherShapeIsRefused) {
  for (const json& bad : {json::array(), json::array({1}), json::array({"a", 2}), json::array({json::array({"a"})}),
                          json(5), json(nullptr), json(true), json::object({{"a", "b"}})}) {
    SCOPED_TRACE(bad.dump());
    expect_jwt_refused(jwt_body({{"aud", bad}}), "aud");
  }
}

TEST_F(Requests, JwtTtlIsAPositiveWholeNumberOfSecondsUpToOneBillion) {
  for (long long ttl : {1LL, 300LL, 1'000'000'000LL}) {
    auto r = parse_jwt_request(jwt_body({{"ttl", ttl}}));
    ASSERT_TRUE(r) << ttl;
    EXPECT_EQ(r->ttl, ttl);
  }
}

TEST_F(Requests, JwtTtlThatIsNotAPositiveIntegerInRangeIsRefused) {
  // Positive integers are built unsigned here, as the parser reads them off the wire.
  for (const json& bad : {json(0), json(-1), json(-9'223'372'036'854'775'807LL - 1), json(1'000'000'001ULL),
                          json(18'446'744'073'709'551'615ULL), json(300.5), json(300.0), json(1e3), json("300"),
                          json(true), json(nullptr), json::array({300})}) {
    SCOPED_TRACE(bad.dump());
    expect_jwt_refused(jwt_body({{"ttl", bad}}), "ttl");
  }
}

TEST_F(Requests, JwtTtlParsedFromTheWireKeepsIntegersAndRefusesFractionsAndOverflow) {
  // What the wire gives: "300" parses as an integer, "300.0" and "3e2" as floating point.
  EXPECT_TRUE(parse_jwt_request(json::parse(R"({"sub": "a", "ttl": 300})")));
  EXPECT_TRUE(parse_jwt_request(json::parse(R"({"sub": "a", "ttl": 1000000000})")));
  for (const char* text : {R"({"sub": "a", "ttl": 1000000001})", R"({"sub": "a", "ttl": 300.0})", R"({"sub": "a", "ttl": 3e2})",
                           R"({"sub": "a", "ttl": 99999999999999999999})", R"({"sub": "a", "ttl": -0.0})"}) {
    SCOPED_TRACE(text);
    expect_jwt_refused(json::parse(text), "ttl");
  }
}

TEST_F(Requests, JwtKeysetIsANonEmptyStringOfAtMost256Characters) {
  EXPECT_EQ(parse_jwt_request(jwt_body({{"keyset", std::string(256, 'k')}}))->keyset, std::string(256, 'k'));
  for (const json& bad : {json(""), json(std::string(257, 'k')), json(1), json(nullptr), json::array({"default"})}) {
    SCOPED_TRACE(bad.dump().substr(0, 40));
    expect_jwt_refused(jwt_body({{"keyset", bad}}), "keyset");
  }
}

TEST_F(Requests, JwtTypIsPrintableAsciiWithoutBlanksOrQuotes) {
  for (const char* good : {"JWT", "at+jwt", "application/example+jwt", "secevent+jwt", "a!#$%&'()*,-./:;<=>?@[]^_`{|}~"}) {
    auto r = parse_jwt_request(jwt_body({{"typ", good}}));
    ASSERT_TRUE(r) << good << ": " << r.error().message;
    EXPECT_EQ(r->typ, good);
  }
  EXPECT_TRUE(parse_jwt_request(jwt_body({{"typ", std::string(64, 't')}})));
  for (const json& bad : {json("a b"), json("a\"b"), json("a\\b"), json("a\tb"), json("a\nb"), json("\xc3\xbc"),
                          json(std::string("a\0b", 3)), json("a\x7f"), json(""), json(std::string(65, 't')), json(1),
                          json(nullptr)}) {
    SCOPED_TRACE(bad.dump());
    expect_jwt_refused(jwt_body({{"typ", bad}}), "typ");
  }
}

TEST_F(Requests, JwtPrivateClaimsAreKeptAsGiven) {
  const json claims = {{"role", "admin"}, {"scopes", {"read", "write"}}, {"n", 1.5}, {"nested", {{"iss", "x"}}}};
  auto r = parse_jwt_request(jwt_body({{"claims", claims}}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->claims, claims);  // a registered name deeper down is just data
  EXPECT_TRUE(parse_jwt_request(jwt_body({{"claims", json::object()}})));
}

TEST_F(Requests, JwtClaimsMustBeAnObject) {
  for (const json& bad : {json::array({"role"}), json("role=admin"), json(1), json(nullptr), json(true)}) {
    SCOPED_TRACE(bad.dump());
    expect_jwt_refused(jwt_body({{"claims", bad}}), "claims");
  }
}

TEST_F(Requests, JwtClaimsMayNotSetAnyRegisteredClaim) {
  for (const char* registered : {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "status"}) {
    SCOPED_TRACE(registered);
    const json body = jwt_body({{"claims", {{"role", "user"}, {registered, "forged"}}}});
    auto r = parse_jwt_request(body);
    expect_refused(r, registered, body);
    // The same value under a private name is fine.
    EXPECT_TRUE(parse_jwt_request(jwt_body({{"claims", {{std::string("x_") + registered, "forged"}}}})));
  }
  // The list the daemon checks is the RFC 7519 list, all of it, and the Token Status List's claim.
  EXPECT_EQ(std::size(kRegisteredClaims), 8u);
}

// --- /v1/jws ---------------------------------------------------------------------------------------

TEST_F(Requests, JwsDecodesThePayloadAndKeepsTheOptionalMembers) {
  auto r = parse_jws_request({{"payload", "eyJhIjoxfQ"}, {"keyset", "default"}, {"typ", "JOSE"}, {"cty", "json"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(std::string(r->payload.begin(), r->payload.end()), R"({"a":1})");
  EXPECT_EQ(r->keyset, "default");
  EXPECT_EQ(r->typ, "JOSE");
  EXPECT_EQ(r->cty, "json");

  auto bare = parse_jws_request({{"payload", "YQ"}});
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->payload, Bytes{'a'});
  EXPECT_FALSE(bare->keyset);
  EXPECT_FALSE(bare->typ);
  EXPECT_FALSE(bare->cty);
  EXPECT_TRUE(parse_jws_request({{"payload", ""}}));  // an empty payload is a valid JWS
}

TEST_F(Requests, JwsPayloadIsRequiredAndMustBeStrictBase64url) {
  expect_jws_refused(json::object(), "payload");
  expect_jws_refused({{"keyset", "default"}}, "payload");
  for (const json& bad : {json(1), json(nullptr), json::array({"YQ"}), json::object()}) {
    SCOPED_TRACE(bad.dump());
    expect_jws_refused({{"payload", bad}}, "payload");
  }
  for (const auto& bad : not_base64url()) {
    SCOPED_TRACE(testing::PrintToString(bad));
    expect_jws_refused({{"payload", bad}}, "payload");
  }
}

TEST_F(Requests, JwsRefusesUnknownMembers) {
  // A caller cannot add header parameters: only typ and cty exist.
  for (const char* member : {"alg", "kid", "crit", "jku", "header", "digest", "sub"})
    expect_jws_refused({{"payload", "YQ"}, {member, "x"}}, member);
}

TEST_F(Requests, JwsTypAndCtyArePrintableAsciiWithoutBlanksOrQuotes) {
  for (const char* member : {"typ", "cty"}) {
    SCOPED_TRACE(member);
    EXPECT_TRUE(parse_jws_request({{"payload", "YQ"}, {member, "application/example+jose"}}));
    for (const json& bad : {json("a b"), json("a\"b"), json("a\\b"), json("\xc3\xa9"), json(""),
                            json(std::string(65, 'c')), json(7), json(nullptr)}) {
      SCOPED_TRACE(bad.dump());
      expect_jws_refused({{"payload", "YQ"}, {member, bad}}, member);
    }
  }
}

TEST_F(Requests, JwsKeysetIsANonEmptyString) {
  EXPECT_TRUE(parse_jws_request({{"payload", "YQ"}, {"keyset", "default"}}));
  expect_jws_refused({{"payload", "YQ"}, {"keyset", ""}}, "keyset");
  expect_jws_refused({{"payload", "YQ"}, {"keyset", 1}}, "keyset");
}

// --- /v1/sign --------------------------------------------------------------------------------------

TEST_F(Requests, SignDecodesTheDigest) {
  // SHA-256("abc"), base64url.
  auto r = parse_sign_request({{"digest", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"}, {"keyset", "rsa"}});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->digest.size(), 32u);
  EXPECT_EQ(r->digest[0], 0xba);
  EXPECT_EQ(r->digest[31], 0xad);
  EXPECT_EQ(r->keyset, "rsa");
  auto bare = parse_sign_request({{"digest", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"}});
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->keyset);
}

TEST_F(Requests, SignDigestIsRequiredAndMustBeStrictBase64url) {
  expect_sign_refused(json::object(), "digest");
  expect_sign_refused({{"keyset", "rsa"}}, "digest");
  for (const json& bad : {json(1), json(nullptr), json::array({"YQ"})}) expect_sign_refused({{"digest", bad}}, "digest");
  // The standard alphabet's form of the same digest is refused.
  expect_sign_refused({{"digest", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="}}, "digest");
  for (const auto& bad : not_base64url()) {
    SCOPED_TRACE(testing::PrintToString(bad));
    expect_sign_refused({{"digest", bad}}, "digest");
  }
}

TEST_F(Requests, SignRefusesUnknownMembers) {
  for (const char* member : {"payload", "alg", "hash", "typ"})
    expect_sign_refused({{"digest", "YQ"}, {member, "x"}}, member);
}

TEST_F(Requests, SignKeysetIsANonEmptyString) {
  expect_sign_refused({{"digest", "YQ"}, {"keyset", ""}}, "keyset");
  expect_sign_refused({{"digest", "YQ"}, {"keyset", false}}, "keyset");
}

}  // namespace
}  // namespace hsmsignd::api
