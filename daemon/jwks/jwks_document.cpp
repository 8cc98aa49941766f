#include "jwks/jwks_document.h"

#include <nlohmann/json.hpp>

#include "crypto/digest.h"
#include "jose/base64url.h"
#include "jose/jwk.h"

namespace hsmsignd::jwks {

Document make_document(const std::vector<PublishedKey>& keys) {
  nlohmann::json set = {{"keys", nlohmann::json::array()}};
  for (const auto& k : keys) set["keys"].push_back(jose::to_published_jwk(k.public_key, k.kid));
  Document doc;
  doc.json = set.dump();
  const Bytes hash = crypto::sha256(as_bytes(doc.json));
  doc.etag = "\"" + jose::base64url_encode(ByteView(hash).first(16)) + "\"";
  return doc;
}

}  // namespace hsmsignd::jwks
