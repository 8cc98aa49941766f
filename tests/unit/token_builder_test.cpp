// The bytes the daemon signs: headers and claims in a fixed member order, registered claims first, and
// JWT IDs that are long and random enough to be unique.
#include "api/token_builder.h"

#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <utility>
#include <vector>
#include <set>
#include <string>

#include "jose/base64url.h"

namespace hsmsignd::api {
namespace {

using nlohmann::json;

class TokenBuilder : public ::testing::Test {
 protected:
  static JwtClaims claims() {
    JwtClaims c;
    c.iss = "https://auth.example.com";
    c.sub = "user-1";
    c.aud = {"api-gateway"};
    c.iat = 1'764'400'000;
    c.exp = 1'764'400'300;
    c.jti = "AAECAwQFBgcICQoLDA0ODw";
    return c;
  }
  static constexpr const char* kRegistered =
      R"({"iss":"https://auth.example.com","sub":"user-1","aud":"api-gateway","iat":1764400000,)"
      R"("nbf":1764400000,"exp":1764400300,"jti":"AAECAwQFBgcICQoLDA0ODw"})";
};

// --- headers ---------------------------------------------------------------------------------------

TEST_F(TokenBuilder, JwtHeaderIsAlgKidTypInThatOrder) {
  EXPECT_EQ(jwt_header(Algorithm::ES256, "kid-1", "JWT"), R"({"alg":"ES256","kid":"kid-1","typ":"JWT"})");
  EXPECT_EQ(jwt_header(Algorithm::RS256, "k", "at+jwt"), R"({"alg":"RS256","kid":"k","typ":"at+jwt"})");
  EXPECT_EQ(jwt_header(Algorithm::PS256, "k", "JWT"), R"({"alg":"PS256","kid":"k","typ":"JWT"})");
  EXPECT_EQ(jwt_header(Algorithm::ES384, "k", "JWT"), R"({"alg":"ES384","kid":"k","typ":"JWT"})");
  EXPECT_EQ(jwt_header(Algorithm::EdDSA, "k", "JWT"), R"({"alg":"EdDSA","kid":"k","typ":"JWT"})");
  // Tamper: another algorithm or kid is another header.
  EXPECT_NE(jwt_header(Algorithm::ES384, "kid-1", "JWT"), R"({"alg":"ES256","kid":"kid-1","typ":"JWT"})");
  EXPECT_NE(jwt_header(Algorithm::ES256, "kid-2", "JWT"), R"({"alg":"ES256","kid":"kid-1","typ":"JWT"})");
}

TEST_F(TokenBuilder, AQuoteInAHeaderValueIsEscapedNotInterpreted) {
  const std::string header = jwt_header(Algorithm::ES256, R"(k","alg":"none)", "JWT");
  EXPECT_EQ(header, R"({"alg":"ES256","kid":"k\",\"alg\":\"none","typ":"JWT"})");
  EXPECT_EQ(json::parse(header)["alg"], "ES256");
}

TEST_F(TokenBuilder, JwsHeaderIsAlgAndKidThenTypThenCtyWhenGiven) {
  EXPECT_EQ(jws_header(Algorithm::ES256, "k", std::nullopt, std::nullopt), R"({"alg":"ES256","kid":"k"})");
  EXPECT_EQ(jws_header(Algorithm::ES256, "k", "JOSE", std::nullopt), R"({"alg":"ES256","kid":"k","typ":"JOSE"})");
  EXPECT_EQ(jws_header(Algorithm::ES256, "k", std::nullopt, "json"), R"({"alg":"ES256","kid":"k","cty":"json"})");
  EXPECT_EQ(jws_header(Algorithm::RS256, "k", "JOSE", "json"), R"({"alg":"RS256","kid":"k","typ":"JOSE","cty":"json"})");
  // An absent typ is absent, not empty.
  EXPECT_EQ(jws_header(Algorithm::ES256, "k", std::nullopt, std::nullopt).find("typ"), std::string::npos);
}

// --- payload ---------------------------------------------------------------------------------------

TEST_F(TokenBuilder, PayloadHasTheRegisteredClaimsInAFixedOrder) {
  EXPECT_EQ(jwt_payload(claims()), kRegistered);
  JwtClaims later = claims();
  later.exp += 1;
  EXPECT_NE(jwt_payload(later), kRegistered);
}

TEST_F(TokenBuilder, NotBeforeIsTheIssueTime) {
  JwtClaims c = claims();
  c.iat = 1'800'000'000;
  c.exp = 1'800'000'060;
  const json p = json::parse(jwt_payload(c));
  EXPECT_EQ(p["nbf"], 1'800'000'000);
  EXPECT_EQ(p["nbf"], p["iat"]);
  EXPECT_EQ(p["exp"].get<std::int64_t>() - p["iat"].get<std::int64_t>(), 60);
}

TEST_F(TokenBuilder, AudienceIsAStringOrAnArrayAsAsked) {
  JwtClaims c = claims();
  EXPECT_TRUE(json::parse(jwt_payload(c))["aud"].is_string());

  c.aud_is_array = true;
  EXPECT_NE(jwt_payload(c).find(R"("aud":["api-gateway"])"), std::string::npos) << jwt_payload(c);

  c.aud = {"api-gateway", "billing"};
  EXPECT_NE(jwt_payload(c).find(R"("aud":["api-gateway","billing"])"), std::string::npos) << jwt_payload(c);
}

TEST_F(TokenBuilder, PrivateClaimsFollowTheRegisteredOnes) {
  const json extra = {{"role", "admin"}, {"tenant", {{"id", 7}}}, {"scopes", {"read", "write"}}};
  JwtClaims c = claims();
  c.extra = &extra;
  const std::string payload = jwt_payload(c);
  // The registered claims come first, unchanged; then the private ones (in nlohmann's name order).
  const std::string registered_prefix = std::string(kRegistered).substr(0, std::string(kRegistered).size() - 1);
  EXPECT_EQ(payload, registered_prefix + R"(,"role":"admin","scopes":["read","write"],"tenant":{"id":7}})");
  EXPECT_EQ(json::parse(payload)["iss"], "https://auth.example.com");
}

TEST_F(TokenBuilder, NoExtraClaimsMeansOnlyTheRegisteredOnes) {
  const json empty = json::object();
  JwtClaims c = claims();
  c.extra = &empty;
  EXPECT_EQ(jwt_payload(c), kRegistered);
  EXPECT_EQ(json::parse(jwt_payload(c)).size(), 7u);
}

// --- jti -------------------------------------------------------------------------------------------

TEST_F(TokenBuilder, AJwtIdIs22Base64urlCharactersOf128Bits) {
  const std::string jti = new_jti();
  EXPECT_EQ(jti.size(), 22u);
  EXPECT_EQ(jti.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), std::string::npos)
      << jti;
  const auto bytes = jose::base64url_decode(jti);
  ASSERT_TRUE(bytes) << jti;
  EXPECT_EQ(bytes->size(), 16u);  // >= 122 random bits, as the contract asks
}

TEST_F(TokenBuilder, AThousandJwtIdsAreAllDifferent) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(new_jti());
  EXPECT_EQ(seen.size(), 1000u);
  // Tamper: the same ID twice is caught by the same check.
  const std::string one = *seen.begin();
  EXPECT_FALSE(seen.insert(one).second);
}

TEST_F(TokenBuilder, JwtIdBitsAreNotStuck) {
  // A broken generator (zeros, a counter) would leave some bit of the 128 the same in every ID.
  std::array<int, 16 * 8> ones{};
  constexpr int kIds = 1000;
  for (int i = 0; i < kIds; ++i) {
    const Bytes b = *jose::base64url_decode(new_jti());
    for (std::size_t bit = 0; bit < ones.size(); ++bit) ones[bit] += (b[bit / 8] >> (bit % 8)) & 1;
  }
  for (std::size_t bit = 0; bit < ones.size(); ++bit) {
    // 1000 fair coin flips land between 400 and 600 heads with probability 1 - 2e-10.
    EXPECT_GT(ones[bit], 400) << "bit " << bit;
    EXPECT_LT(ones[bit], 600) << "bit " << bit;
  }
}

}  // namespace
}  // namespace hsmsignd::api

namespace hsmsignd::api {
namespace {

// The direct writer must give what nlohmann's dump() gives, for every character class a client may send.
TEST(JsonWriter, WritesWhatNlohmannDumpWrites) {
  std::string tricky = "quote\" backslash\\ slash/ tab\t nl\n cr\r bs\b ff\f nul";
  tricky += '\0';
  tricky += " \x01\x1f\x7f é 日本 😀";
  std::string out;
  JsonObjectWriter(out).string("k\"ey", tricky).number("n", -42).json("raw", "[1,2]").close();
  const nlohmann::ordered_json expected = {{"k\"ey", tricky}, {"n", -42}, {"raw", {1, 2}}};
  EXPECT_EQ(out, expected.dump());
  EXPECT_EQ(nlohmann::ordered_json::parse(out), expected);
}

// Bytes that are not UTF-8 (a request target, a token's label) must not make a line that is not JSON:
// each ill-formed sequence becomes one U+FFFD, as Python's bytes.decode("utf-8", "replace") gives them
// (the expected strings below are its output: Unicode's "maximal subpart" practice).
TEST(JsonWriter, ReplacesIllFormedUtf8AsUnicodeRecommends) {
  const std::string r = "\xEF\xBF\xBD";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\xF1\x80\x80\xE1\x80\xC2" "b\x80" "c\x80\xBF" "d", "a" + r + r + r + "b" + r + "c" + r + r + "d"},
      {"\xED\xA0\x80", r + r + r},          // a surrogate
      {"\xC0\xAF", r + r},                  // overlong
      {"\xF4\x90\x80\x80", r + r + r + r},  // above U+10FFFF
      {"\xE2\x82", r},                      // cut short
      {"/v1/jwt\xFF\xFE\xC3", "/v1/jwt" + r + r + r},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E"},  // well-formed
  };
  for (const auto& [in, expected] : cases) {
    std::string out;
    append_json_string(out, in);
    EXPECT_EQ(out, "\"" + expected + "\"") << testing::PrintToString(in);
    EXPECT_EQ(nlohmann::json::parse(out).get<std::string>(), expected);
  }
}

// Whatever the bytes, the output is a JSON string a strict parser takes, and well-formed UTF-8 comes
// back unchanged.
TEST(JsonWriter, AnyBytesMakeAStringAStrictParserTakes) {
  std::mt19937 random(7);
  for (int round = 0; round < 20000; ++round) {
    std::string in(random() % 12, '\0');
    for (auto& c : in) c = static_cast<char>(random() % 2 ? random() % 256 : 0x80 + random() % 0x40);
    std::string out;
    append_json_string(out, in);
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(out)) << testing::PrintToString(in);
    bool well_formed = true;
    try {
      (void)nlohmann::json(in).dump();
    } catch (const nlohmann::json::type_error&) {
      well_formed = false;
    }
    if (well_formed) {
      EXPECT_EQ(parsed.get<std::string>(), in);
    }
  }
}

}  // namespace
}  // namespace hsmsignd::api
