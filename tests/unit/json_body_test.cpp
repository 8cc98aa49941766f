// Request bodies: one JSON object, valid UTF-8, no duplicate names, bounded nesting, and errors that
// never repeat what the client sent.
#include "api/json_body.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::api {
namespace {

// Looks like something a client must never see reflected into a log or an error answer.
constexpr const char* kSecret = "s3cr3t-Hunter2-PIN-4711";

class JsonBody : public ::testing::Test {
 protected:
  // `levels` containers, each holding the next; the innermost holds `innermost` (nothing when empty).
  static std::string nested_objects(int levels, const std::string& innermost = "1") {
    std::string s;
    for (int i = 0; i < levels - 1; ++i) s += R"({"a":)";
    s += innermost.empty() ? "{}" : R"({"a":)" + innermost + "}";
    for (int i = 0; i < levels - 1; ++i) s += "}";
    return s;
  }
  // An object whose member holds arrays, for `levels` containers in all.
  static std::string nested_arrays(int levels, const std::string& innermost = "1") {
    std::string s = R"({"a":)";
    for (int i = 0; i < levels - 1; ++i) s += "[";
    s += innermost;
    for (int i = 0; i < levels - 1; ++i) s += "]";
    return s + "}";
  }

  static void expect_refused(std::string_view body, std::string_view message_part = {}) {
    auto parsed = parse_object(body);
    ASSERT_FALSE(parsed) << "accepted: " << body;
    EXPECT_EQ(parsed.error().status, 400);
    if (!message_part.empty()) {
      EXPECT_NE(parsed.error().message.find(message_part), std::string::npos) << parsed.error().message;
    }
  }

  static void expect_secret_not_echoed(std::string_view body) {
    auto parsed = parse_object(body);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().message.find(kSecret), std::string::npos) << parsed.error().message;
    EXPECT_EQ(parsed.error().body().find(kSecret), std::string::npos) << parsed.error().body();
  }
};

TEST_F(JsonBody, AcceptsAnObject) {
  auto parsed = parse_object(R"( {"sub": "user-1", "ttl": 300, "claims": {"roles": ["a", "b"]}} )");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ((*parsed)["sub"], "user-1");
  EXPECT_EQ((*parsed)["ttl"], 300);
  EXPECT_EQ((*parsed)["claims"]["roles"][1], "b");
  EXPECT_TRUE(parse_object("{}"));
}

TEST_F(JsonBody, RefusesEverythingThatIsNotAnObject) {
  for (const char* body : {"[]", R"([{"sub": "a"}])", R"("sub")", "42", "-1.5", "null", "true", "false"}) {
    SCOPED_TRACE(body);
    expect_refused(body, "must be a JSON object");
  }
}

TEST_F(JsonBody, RefusesEmptyTruncatedAndTrailingBytes) {
  for (const char* body : {"", " ", "{", R"({"sub": "a")", R"({"sub": "a"} {})", R"({"sub": "a"}x)", R"({"sub" "a"})",
                           R"({'sub': 'a'})", R"({"sub": "a",})"}) {
    SCOPED_TRACE(body);
    expect_refused(body, "malformed JSON");
  }
}

TEST_F(JsonBody, RefusesADuplicateMemberAtTheTopLevel) {
  expect_refused(R"({"sub": "alice", "sub": "admin"})", "duplicate member \"sub\"");
  expect_refused(R"({"sub": "alice", "ttl": 1, "sub": "alice"})", "duplicate");
}

TEST_F(JsonBody, RefusesADuplicateMemberInANestedObject) {
  expect_refused(R"({"sub": "a", "claims": {"role": "user", "role": "admin"}})", "duplicate member \"role\"");
  expect_refused(R"({"claims": {"deep": {"x": 1, "y": {"z": 1, "z": 2}}}})", "duplicate");
  expect_refused(R"({"list": [{"k": 1}, {"k": 2, "k": 3}]})", "duplicate");
}

TEST_F(JsonBody, AcceptsTheSameNameInDifferentObjects) {
  // Each object has its own names: a nested "sub" or sibling objects in an array are not duplicates.
  EXPECT_TRUE(parse_object(R"({"sub": "a", "claims": {"sub_alias": 1, "x": {"sub": 2}}})"));
  EXPECT_TRUE(parse_object(R"({"list": [{"k": 1}, {"k": 2}], "k": 3})"));
  EXPECT_TRUE(parse_object(R"({"a": {"x": 1}, "b": {"x": 2}})"));
}

TEST_F(JsonBody, AcceptsSixteenLevelsOfNesting) {
  for (const auto& body : {nested_objects(16), nested_objects(16, ""), nested_arrays(16), nested_arrays(16, "")}) {
    SCOPED_TRACE(body);
    auto parsed = parse_object(body);
    EXPECT_TRUE(parsed) << parsed.error().message;
  }
}

TEST_F(JsonBody, RefusesNestingDeeperThanSixteenLevels) {
  expect_refused(nested_objects(17), "nested deeper than 16");
  expect_refused(nested_arrays(17), "nested deeper than 16");
  expect_refused(nested_objects(1000), "nested deeper than 16");
  // A nesting bomb is refused without exhausting the stack.
  expect_refused(std::string(R"({"a":)") + std::string(100'000, '[') + std::string(100'000, ']') + "}");
}

TEST_F(JsonBody, RefusesNestingDeeperThanSixteenLevelsWhenTheInnermostContainerIsEmpty) {
  // Seventeen containers are seventeen levels whether or not the innermost one holds a value.
  expect_refused(nested_objects(17, ""), "nested deeper than 16");
  expect_refused(nested_arrays(17, ""), "nested deeper than 16");
}

TEST_F(JsonBody, AcceptsValidUtf8) {
  auto parsed = parse_object("{\"sub\": \"J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80\", \"\xc3\xa9\": 1}");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ((*parsed)["sub"], "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_TRUE(parse_object(R"({"sub": "\u00fc \ud83d\ude00"})"));  // escaped, with a surrogate pair
}

TEST_F(JsonBody, RefusesInvalidUtf8) {
  const std::string bad[] = {
      "{\"sub\": \"\xff\"}",                 // never valid
      "{\"sub\": \"\xc0\xaf\"}",             // overlong '/'
      "{\"sub\": \"\xed\xa0\x80\"}",         // an encoded surrogate
      "{\"sub\": \"\xe2\x82\"}",             // truncated sequence
      "{\"sub\": \"\xf4\x90\x80\x80\"}",     // above U+10FFFF
      "{\"\xfe\": 1}",                       // in a member name
      R"({"sub": "\ud800"})",                // a lone surrogate escape
      std::string("{\"sub\": \"a") + '\0' + "b\"}",  // a raw control character
  };
  for (const auto& body : bad) {
    SCOPED_TRACE(testing::PrintToString(body));
    expect_refused(body);
  }
}

TEST_F(JsonBody, ErrorsDoNotEchoTheBody) {
  const std::string s = kSecret;
  expect_secret_not_echoed(R"({"pin": ")" + s);                           // unterminated string
  expect_secret_not_echoed(R"({"pin": ")" + s + "\xff\"}");               // invalid UTF-8 right after it
  expect_secret_not_echoed(R"({"pin": ")" + s + R"(", "x": 1,})");        // a syntax error after it
  expect_secret_not_echoed(R"({"pin": ")" + s + R"(", "pin": "x"})");     // a duplicate after it
  expect_secret_not_echoed("\"" + s + "\"");                              // not an object
  expect_secret_not_echoed(nested_objects(17, R"(")" + s + R"(")"));      // too deep
  expect_secret_not_echoed(s);                                            // not JSON at all
}

}  // namespace
}  // namespace hsmsignd::api

namespace hsmsignd::api {
namespace {

// Found by fuzzing (tests/fuzz/findings/001, 003, 004): each used to get past the strict parser.
TEST(JsonBodyFuzzFindings, ANulByteIsRefusedNotTakenForTheEnd) {
  const std::string body("{\"sub\":\"a\"}\0{\"junk\"", 20);
  auto parsed = parse_object(body);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().status, 400);
  EXPECT_NE(parsed.error().message.find("NUL"), std::string::npos) << parsed.error().message;
}

TEST(JsonBodyFuzzFindings, ADuplicatedEmptyNameIsADuplicateToo) {  // findings/004
  auto parsed = parse_object(R"({"claims":{"":"a","":"b"}})");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("duplicate member \"\""), std::string::npos) << parsed.error().message;
}

TEST(JsonBodyFuzzFindings, ANumberTooLargeIsA400NotAnEscapingException) {
  for (const char* body : {R"({"ttl":1e999})", R"({"ttl":-1e999})", R"({"a":[1e400]})"}) {
    auto parsed = parse_object(body);
    ASSERT_FALSE(parsed) << body;
    EXPECT_EQ(parsed.error().status, 400) << body;
  }
}

}  // namespace
}  // namespace hsmsignd::api
