// Request bodies are parsed strictly: one JSON object, valid UTF-8, no duplicate member names (two
// "sub" members could be read differently by a proxy and by us), and bounded nesting.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "api/api_error.h"
#include "hsmsignd/result.h"

namespace hsmsignd::api {

Expected<nlohmann::json, ApiError> parse_object(std::string_view body);

}  // namespace hsmsignd::api
