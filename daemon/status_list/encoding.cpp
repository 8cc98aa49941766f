#include "status_list/encoding.h"

#include <zlib.h>

#include <stdexcept>

#include "jose/base64url.h"

namespace hsmsignd::status_list {

std::string encode_list(ByteView bytes) {
  uLongf size = compressBound(static_cast<uLong>(bytes.size()));
  Bytes out(size);
  if (compress2(out.data(), &size, bytes.data(), static_cast<uLong>(bytes.size()), Z_BEST_COMPRESSION) != Z_OK)
    throw std::runtime_error("zlib compress2 failed");
  out.resize(size);
  return jose::base64url_encode(out);
}

}  // namespace hsmsignd::status_list
