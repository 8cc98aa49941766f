#include "jose/base64url.h"

#include <array>
#include <cstdint>

namespace hsmsignd::jose {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xFF;

constexpr std::array<std::uint8_t, 256> kDecode = [] {
  std::array<std::uint8_t, 256> table{};
  table.fill(kInvalid);
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  return table;
}();

}  // namespace

void base64url_append(std::string& out, ByteView data) {
  const std::size_t start = out.size();
  out.resize(start + base64url_encoded_size(data.size()));
  char* p = out.data() + start;

  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8 | data[i + 2];
    *p++ = kAlphabet[v >> 18];
    *p++ = kAlphabet[(v >> 12) & 63];
    *p++ = kAlphabet[(v >> 6) & 63];
    *p++ = kAlphabet[v & 63];
  }
  if (const std::size_t rest = data.size() - i; rest == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    *p++ = kAlphabet[v >> 18];
    *p++ = kAlphabet[(v >> 12) & 63];
  } else if (rest == 2) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8;
    *p++ = kAlphabet[v >> 18];
    *p++ = kAlphabet[(v >> 12) & 63];
    *p++ = kAlphabet[(v >> 6) & 63];
  }
}

std::string base64url_encode(ByteView data) {
  std::string out;
  base64url_append(out, data);
  return out;
}

std::optional<Bytes> base64url_decode(std::string_view text) {
  const std::size_t rest = text.size() % 4;
  if (rest == 1) return std::nullopt;  // 6 bits cannot end a byte

  Bytes out(text.size() / 4 * 3 + (rest == 0 ? 0 : rest - 1));
  std::uint8_t* p = out.data();
  auto sextet = [](char c) { return kDecode[static_cast<unsigned char>(c)]; };

  std::size_t i = 0;
  for (; i + 4 <= text.size(); i += 4) {
    const std::uint8_t a = sextet(text[i]), b = sextet(text[i + 1]), c = sextet(text[i + 2]), d = sextet(text[i + 3]);
    if (((a | b | c | d) & 0xC0) != 0) return std::nullopt;  // kInvalid has the top bits set
    const std::uint32_t v = std::uint32_t{a} << 18 | std::uint32_t{b} << 12 | std::uint32_t{c} << 6 | d;
    *p++ = static_cast<std::uint8_t>(v >> 16);
    *p++ = static_cast<std::uint8_t>(v >> 8);
    *p++ = static_cast<std::uint8_t>(v);
  }
  if (rest == 2) {
    const std::uint8_t a = sextet(text[i]), b = sextet(text[i + 1]);
    // The last character carries 2 bits of data and 4 unused bits, which must be zero.
    if (((a | b) & 0xC0) != 0 || (b & 0x0F) != 0) return std::nullopt;
    *p++ = static_cast<std::uint8_t>(a << 2 | b >> 4);
  } else if (rest == 3) {
    const std::uint8_t a = sextet(text[i]), b = sextet(text[i + 1]), c = sextet(text[i + 2]);
    // 4 bits of data and 2 unused bits in the last character.
    if (((a | b | c) & 0xC0) != 0 || (c & 0x03) != 0) return std::nullopt;
    *p++ = static_cast<std::uint8_t>(a << 2 | b >> 4);
    *p++ = static_cast<std::uint8_t>(b << 4 | c >> 2);
  }
  return out;
}

}  // namespace hsmsignd::jose
