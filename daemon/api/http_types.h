// What the API handlers see of HTTP: the server (Beast) turns requests into these and back.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace hsmsignd::api {

struct HttpRequest {
  std::string method;
  std::string target;  // the path; a query string is ignored
  std::string body;
  std::string if_none_match;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string etag;
  std::string cache_control;
  long long retry_after = 0;  // seconds, for a 429; 0: no Retry-After header
  std::string allow{};        // the methods, for a 405
};

// Called exactly once per request, possibly from a signer thread: the server posts it back to the
// connection's own executor.
using Reply = std::function<void(HttpResponse)>;

}  // namespace hsmsignd::api
