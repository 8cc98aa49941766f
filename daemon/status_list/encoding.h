// The Token Status List's `lst` (draft-ietf-oauth-status-list §4.1): one bit per token, token i at bit
// i % 8 (least significant first) of byte i / 8, the bytes compressed with DEFLATE in the ZLIB format,
// then base64url.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hsmsignd/bytes.h"

namespace hsmsignd::status_list {

inline void set_bit(std::vector<std::uint8_t>& bytes, std::uint64_t index) {
  bytes[index / 8] |= static_cast<std::uint8_t>(1u << (index % 8));
}

// base64url(zlib(bytes)) at the best compression: a list of mostly valid tokens is mostly zero bytes.
std::string encode_list(ByteView bytes);

}  // namespace hsmsignd::status_list
