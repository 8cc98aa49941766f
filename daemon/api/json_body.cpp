#include "api/json_body.h"

#include <set>
#include <string>
#include <vector>

namespace hsmsignd::api {
namespace {
constexpr int kMaxDepth = 16;
}

Expected<nlohmann::json, ApiError> parse_object(std::string_view body) {
  std::vector<std::set<std::string>> members;  // names seen in each open object
  std::string duplicate;
  bool too_deep = false;
  int depth = 0;  // open containers, counted here: the parser's own depth argument is one off for some events
  auto check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (++depth > kMaxDepth) too_deep = true;
    }
    if (event == E::object_end || event == E::array_end) --depth;
    if (event == E::object_start) members.emplace_back();
    if (event == E::object_end && !members.empty()) members.pop_back();
    if (event == E::key && !members.empty() && !members.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return !too_deep && duplicate.empty();  // stop building once the body is refused
  };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body.begin(), body.end(), check);
  } catch (const nlohmann::json::parse_error& e) {
    if (too_deep) return ApiError::bad_request("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (!duplicate.empty()) return ApiError::bad_request("duplicate member \"" + duplicate + "\"");
    // nlohmann's own text quotes the bytes it read; the position is enough and echoes nothing back.
    return ApiError::bad_request("malformed JSON (or invalid UTF-8) at byte " + std::to_string(e.byte));
  }
  if (too_deep) return ApiError::bad_request("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  if (!duplicate.empty()) return ApiError::bad_request("duplicate member \"" + duplicate + "\"");
  if (!doc.is_object()) return ApiError::bad_request("the body must be a JSON object");
  return doc;
}

}  // namespace hsmsignd::api
