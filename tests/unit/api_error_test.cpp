// The error answers of the APIs: a code name per status and a two-member JSON body that never throws.
#include "api/api_error.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace hsmsignd::api {
namespace {

using nlohmann::json;

TEST(ApiError, EveryStatusHasItsContractCode) {
  const std::pair<ApiError, const char*> cases[] = {
      {ApiError::bad_request("m"), "bad_request"},   {ApiError::forbidden("m"), "forbidden"},
      {ApiError::not_found("m"), "not_found"},       {ApiError::method_not_allowed("m"), "method_not_allowed"},
      {ApiError::timeout("m"), "timeout"},           {ApiError::too_large("m"), "too_large"},
      {ApiError::overloaded("m"), "overloaded"},     {ApiError::unavailable("m"), "unavailable"},
  };
  const int statuses[] = {400, 403, 404, 405, 408, 413, 429, 503};
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(cases[i].second);
    EXPECT_EQ(cases[i].first.status, statuses[i]);
    EXPECT_EQ(cases[i].first.code(), cases[i].second);
  }
}

TEST(ApiError, AStatusOutsideTheContractIsAPlainError) {
  EXPECT_EQ((ApiError{500, "m"}.code()), "error");
  EXPECT_EQ((ApiError{200, "m"}.code()), "error");
}

TEST(ApiError, BodyIsErrorAndMessageOnly) {
  const ApiError e = ApiError::forbidden("client \"x\" may not use keyset \"y\"");
  EXPECT_EQ(e.body(), R"({"error":"forbidden","message":"client \"x\" may not use keyset \"y\""})");
  const json parsed = json::parse(e.body());
  EXPECT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed["error"], "forbidden");
  EXPECT_EQ(parsed["message"], "client \"x\" may not use keyset \"y\"");
}

TEST(ApiError, AMessageCannotAddMembersToTheBody) {
  const ApiError e = ApiError::bad_request(R"(x","error":"ok","extra":")");
  const json parsed = json::parse(e.body());
  EXPECT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed["error"], "bad_request");
  EXPECT_EQ(parsed["message"], R"(x","error":"ok","extra":")");
}

TEST(ApiError, InvalidUtf8InAMessageIsReplacedNotThrown) {
  const ApiError e = ApiError::bad_request("unknown member \"\xff\xfe\xc0\"");
  std::string body;
  ASSERT_NO_THROW(body = e.body());
  json parsed;
  ASSERT_NO_THROW(parsed = json::parse(body)) << body;  // what goes out is valid JSON
  const std::string message = parsed["message"];
  EXPECT_NE(message.find("\xef\xbf\xbd"), std::string::npos) << message;  // U+FFFD
  EXPECT_EQ(message.find('\xff'), std::string::npos);
  EXPECT_NE(message.find("unknown member"), std::string::npos);
}

TEST(ApiError, ControlCharactersInAMessageAreEscaped) {
  const ApiError e = ApiError::bad_request(std::string("line\r\nbreak\0nul", 15));
  const std::string body = e.body();
  EXPECT_EQ(body.find('\n'), std::string::npos);
  EXPECT_EQ(body.find('\r'), std::string::npos);
  EXPECT_EQ(body.find('\0'), std::string::npos);
  EXPECT_EQ(json::parse(body)["message"], std::string("line\r\nbreak\0nul", 15));
}

}  // namespace
}  // namespace hsmsignd::api
