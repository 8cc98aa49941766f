// Lower-case hex of a CKA_ID, as the custody report and the signers' messages show it.
#pragma once

#include <string>

#include "hsmsignd/bytes.h"

namespace hsmsignd {

inline std::string hex(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (auto b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace hsmsignd
