// base64url without padding (RFC 4648 §5, as RFC 7515 §2 uses it). Hand-written because it runs on
// every token issued, and strict because it also parses JWKs: each byte string has exactly one
// accepted encoding.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "hsmsignd/bytes.h"

namespace hsmsignd::jose {

// Length of the encoding of `size` bytes.
constexpr std::size_t base64url_encoded_size(std::size_t size) { return size / 3 * 4 + (size % 3 == 0 ? 0 : size % 3 + 1); }

// Appends the encoding of `data` to `out`; lets callers build a JWS in one allocation.
void base64url_append(std::string& out, ByteView data);

std::string base64url_encode(ByteView data);

// nullopt unless `text` is the canonical unpadded base64url encoding of some bytes: no '=', '+', '/',
// whitespace or other characters, no length of the form 4k+1, and the unused low bits of the last
// character zero.
std::optional<Bytes> base64url_decode(std::string_view text);

}  // namespace hsmsignd::jose
