// The JWS compact serialisation (RFC 7515 §7.1), in the two steps signing needs: the bytes to sign,
// then the token once the signature is back.
#pragma once

#include <string>
#include <string_view>

#include "hsmsignd/bytes.h"

namespace hsmsignd::jose {

// base64url(header_json) + "." + base64url(payload). `header_json` is used byte for byte: what is
// signed is exactly what was passed.
std::string signing_input(std::string_view header_json, ByteView payload);

// signing_input + "." + base64url(signature).
std::string compact(std::string_view signing_input, ByteView signature);

}  // namespace hsmsignd::jose
