#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace hsmsignd {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace hsmsignd
