#include "errors.h"

#include <cstring>

namespace hsmsignd::client {
namespace {

// strerror() shares one buffer between threads; strerror_r has a GNU and an XSI form, told apart here by
// what it returns.
[[maybe_unused]] std::string strerror_text(char* gnu, const char*, int) { return gnu; }
[[maybe_unused]] std::string strerror_text(int xsi, const char* buffer, int err) {
  return xsi == 0 ? std::string(buffer) : "error " + std::to_string(err);
}

std::string errno_text(int err) {
  char buffer[256] = {};
  return strerror_text(strerror_r(err, buffer, sizeof buffer), buffer, err);
}

}  // namespace

bool Error::transient() const {
  switch (kind) {
    case Kind::timeout:
    case Kind::io:
      return true;
    case Kind::refused:
      return status == 429 || status == 503;
    case Kind::connect:
    case Kind::protocol:
      return false;
  }
  return false;
}

std::string Error::what() const {
  if (kind != Kind::refused) return message;
  // As hsmsignctl has always printed a refusal: "403 forbidden: <the daemon's message>".
  std::string text = std::to_string(status);
  if (!code.empty()) text += " " + code + ":";
  if (!message.empty()) text += " " + message;
  return text;
}

namespace detail {

Error make_error(Error::Kind kind, std::string message) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

Error errno_error(Error::Kind kind, std::string_view doing, const std::string& socket, int err) {
  return make_error(kind, std::string(doing) + " " + socket + ": " + errno_text(err));
}

}  // namespace detail
}  // namespace hsmsignd::client
