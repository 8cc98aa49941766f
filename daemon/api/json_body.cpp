#include "api/json_body.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace hsmsignd::api {
namespace {
constexpr int kMaxDepth = 16;
}

Expected<nlohmann::json, ApiError> parse_object(std::string_view body) {
  std::vector<std::set<std::string>> members;  // names seen in each open object
  std::optional<std::string> duplicate;  // "" is a name too, so emptiness can't mean "none"
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
        !duplicate)
      duplicate = parsed.get<std::string>();
    return !too_deep && !duplicate;  // stop building once the body is refused
  };
  // nlohmann's lexer takes a NUL byte for the end of the input and would never look at what follows it.
  if (const auto nul = body.find('\0'); nul != std::string_view::npos)
    return ApiError::bad_request("malformed JSON: a NUL byte at byte " + std::to_string(nul + 1));
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body.begin(), body.end(), check);
  } catch (const nlohmann::json::parse_error& e) {
    if (too_deep) return ApiError::bad_request("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (duplicate) return ApiError::bad_request("duplicate member \"" + *duplicate + "\"");
    // nlohmann's own text quotes the bytes it read; the position is enough and echoes nothing back.
    return ApiError::bad_request("malformed JSON (or invalid UTF-8) at byte " + std::to_string(e.byte));
  } catch (const nlohmann::json::out_of_range&) {
    return ApiError::bad_request("malformed JSON: a number too large to represent");
  } catch (const nlohmann::json::exception&) {
    return ApiError::bad_request("malformed JSON");
  }
  if (too_deep) return ApiError::bad_request("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  if (duplicate) return ApiError::bad_request("duplicate member \"" + *duplicate + "\"");
  if (!doc.is_object()) return ApiError::bad_request("the body must be a JSON object");
  return doc;
}

}  // namespace hsmsignd::api
