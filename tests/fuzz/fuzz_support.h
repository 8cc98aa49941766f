// What the fuzz targets share: a check that aborts (libFuzzer then saves the input as a crash), and
// the small independent oracles the targets hold the daemon's code to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/api_error.h"

// A broken invariant is a finding like a crash: print what broke and abort, so libFuzzer keeps the input.
#define FUZZ_CHECK(cond, what)                                                                      \
  do {                                                                                             \
    if (!(cond)) ::hsmsignd::fuzz::fail(__FILE__, __LINE__, #cond, std::string(what));            \
  } while (0)

namespace hsmsignd::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* cond, const std::string& what) {
  std::fprintf(stderr, "\nFUZZ INVARIANT BROKEN at %s:%d: %s\n  %s\n", file, line, cond, what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. Written here,
// independently of nlohmann's parser, to check that what the daemon accepts is valid.
inline bool is_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// The contract's code for an error status (ApiError's table, which unit tests hold to the contract), or
// nullopt for a status the contract does not document (ApiError then says plain "error").
inline std::optional<std::string> code_for(int status) {
  std::string code = api::ApiError{status, {}}.code();
  if (code == "error") return std::nullopt;
  return code;
}

// An error answer is {"error": <code of its status>, "message": <non-empty>} and nothing else, its
// status one of the documented ones, and it is valid JSON whatever bytes the message quoted.
inline void check_error_body(int status, std::string_view body) {
  const auto code = code_for(status);
  FUZZ_CHECK(code.has_value(), "undocumented error status " + std::to_string(status));
  const auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  FUZZ_CHECK(j.is_object() && j.size() == 2, "error body is not a two-member object: " + std::string(body));
  FUZZ_CHECK(j.contains("error") && j["error"] == *code, "error code does not match the status: " + std::string(body));
  FUZZ_CHECK(j.contains("message") && j["message"].is_string() && !j["message"].get<std::string>().empty(),
             "error without a message: " + std::string(body));
}

inline void check_api_error(const api::ApiError& e, int expected_status = 0) {
  if (expected_status) FUZZ_CHECK(e.status == expected_status, "status " + std::to_string(e.status) + ": " + e.message);
  FUZZ_CHECK(!e.message.empty(), "an ApiError with an empty message, status " + std::to_string(e.status));
  FUZZ_CHECK(code_for(e.status).has_value(), "undocumented error status " + std::to_string(e.status) + ": " + e.message);
  check_error_body(e.status, e.body());
}

}  // namespace hsmsignd::fuzz
