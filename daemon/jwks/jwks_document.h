// The JWK Set document (RFC 7517 §5) and its ETag.
#pragma once

#include <string>
#include <vector>

#include "hsmsignd/public_key.h"

namespace hsmsignd::jwks {

struct PublishedKey {
  std::string kid;
  PublicKey public_key;
};

struct Document {
  std::string json;
  std::string etag;  // a strong validator: the quoted base64url SHA-256 of `json`, truncated
};

Document make_document(const std::vector<PublishedKey>& keys);

}  // namespace hsmsignd::jwks
