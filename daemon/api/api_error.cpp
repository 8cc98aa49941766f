#include "api/api_error.h"

#include <nlohmann/json.hpp>

namespace hsmsignd::api {

std::string ApiError::code() const {
  switch (status) {
    case 400: return "bad_request";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "timeout";
    case 413: return "too_large";
    case 429: return "overloaded";
    case 503: return "unavailable";
  }
  return "error";
}

std::string ApiError::body() const {
  // Messages may quote what the client sent; replace, rather than throw on, bytes that are not UTF-8.
  return nlohmann::json{{"error", code()}, {"message", message}}.dump(-1, ' ', false,
                                                                      nlohmann::json::error_handler_t::replace);
}

HttpResponse error_response(const ApiError& e) {
  HttpResponse r{e.status, e.body(), "application/json", {}, {}};
  r.allow = e.allow;
  r.retry_after = e.retry_after;
  return r;
}

}  // namespace hsmsignd::api
