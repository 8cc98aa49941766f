#include "jose/jws.h"

#include "jose/base64url.h"

namespace hsmsignd::jose {

std::string signing_input(std::string_view header_json, ByteView payload) {
  std::string out;
  out.reserve(base64url_encoded_size(header_json.size()) + 1 + base64url_encoded_size(payload.size()));
  base64url_append(out, as_bytes(header_json));
  out.push_back('.');
  base64url_append(out, payload);
  return out;
}

std::string compact(std::string_view signing_input, ByteView signature) {
  std::string out;
  out.reserve(signing_input.size() + 1 + base64url_encoded_size(signature.size()));
  out.append(signing_input);
  out.push_back('.');
  base64url_append(out, signature);
  return out;
}

}  // namespace hsmsignd::jose
