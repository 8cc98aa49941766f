// Small helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "hsmsignd/bytes.h"
#include "jose/base64url.h"

namespace hsmsignd::test {

// A fresh folder under the system's temporary one, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hsmsignd-unit-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline Bytes hex(std::string_view text) {
  Bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < text.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(nibble(text[i]) << 4 | nibble(text[i + 1])));
  return out;
}

// Decodes a vector that is known to be valid base64url; a failure is a broken test, reported as such.
inline Bytes b64u(std::string_view text) {
  auto bytes = jose::base64url_decode(text);
  if (!bytes) {
    ADD_FAILURE() << "test vector is not base64url: " << text;
    return {};
  }
  return *bytes;
}

// The tamper half of every positive case: the same bytes with one bit changed at `index`.
inline Bytes flipped(ByteView bytes, std::size_t index) {
  Bytes out(bytes.begin(), bytes.end());
  out.at(index) ^= 0x01;
  return out;
}

inline Bytes flipped(std::string_view text, std::size_t index) { return flipped(as_bytes(text), index); }

}  // namespace hsmsignd::test
