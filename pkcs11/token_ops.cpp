#include "token_ops.h"

namespace hsmsignd::pkcs11 {

Result<std::vector<KeyObject>> LocalToken::list_keys() {
  return pool_.run([](SessionRef s) { return pkcs11::list_keys(s); });
}

Result<std::vector<PublicObject>> LocalToken::list_public_keys() {
  return pool_.run([](SessionRef s) { return pkcs11::list_public_keys(s); });
}

Result<KeyObject> LocalToken::generate_key_pair(const KeySpec& spec) {
  return pool_.run([&](SessionRef s) { return pkcs11::generate_key_pair(s, spec); });
}

Result<PublicKey> LocalToken::export_public_key(ByteView id, Algorithm algorithm) {
  return pool_.run([&](SessionRef s) -> Result<PublicKey> {
    auto key = find_key(s, id);
    if (!key) return key.error();
    if (!*key) return Error::not_found("no key with that CKA_ID");
    return pkcs11::export_public_key(s, **key, algorithm);
  });
}

Status LocalToken::set_label(ByteView id, const std::string& label) {
  return pool_.run([&](SessionRef s) { return pkcs11::set_label(s, id, label); });
}

Status LocalToken::destroy_key(ByteView id) {
  return pool_.run([&](SessionRef s) { return pkcs11::destroy_key(s, id); });
}

}  // namespace hsmsignd::pkcs11
