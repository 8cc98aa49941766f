// An error answer of the issuer and admin APIs: {"error": "<code>", "message": "<text>"}.
#pragma once

#include <string>

#include "api/http_types.h"

namespace hsmsignd::api {

struct ApiError {
  int status;           // 400, 403, 404, 405, 408, 413, 429, 500, 503
  std::string message;  // for a person; never a secret, a stack trace or PKCS#11 internals beyond CKR_ names
  std::string allow{};         // a 405's Allow header: the methods the path takes
  long long retry_after = 0;   // a 429's Retry-After header, in seconds; 0: none

  std::string code() const;  // bad_request, forbidden, …
  std::string body() const;  // the JSON answer

  static ApiError bad_request(std::string m) { return {400, std::move(m)}; }
  static ApiError forbidden(std::string m) { return {403, std::move(m)}; }
  static ApiError not_found(std::string m) { return {404, std::move(m)}; }
  static ApiError method_not_allowed(std::string m, std::string allow = {}) {
    return {405, std::move(m), std::move(allow)};
  }
  static ApiError timeout(std::string m) { return {408, std::move(m)}; }
  static ApiError too_large(std::string m) { return {413, std::move(m)}; }
  static ApiError overloaded(std::string m, long long retry_after = 0) { return {429, std::move(m), {}, retry_after}; }
  static ApiError unavailable(std::string m) { return {503, std::move(m)}; }
  // A bug of ours, never the client's; outside the contract's codes, so its code is plain "error".
  static ApiError internal(std::string m) { return {500, std::move(m)}; }
};

// The answer: the body, and Allow or Retry-After when the error has them.
HttpResponse error_response(const ApiError& e);

}  // namespace hsmsignd::api
