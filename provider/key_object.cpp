#include "key_object.h"

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace hsmsignd::provider {
namespace {

struct Reference {
  std::uint64_t tag;
  const Key* key;
};
constexpr std::uint64_t kTag = 0x6873'6d73'6967'6e64;  // "hsmsignd"

}  // namespace

int pass_key(const Key& key, OSSL_CALLBACK* object_cb, void* object_cbarg) {
  int type = OSSL_OBJECT_PKEY;
  std::string data_type(key.type());
  Reference reference{kTag, &key};
  OSSL_PARAM params[] = {
      OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &type),
      // construct_*: the static-initializer macros would give the string a length of 0.
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, data_type.data(), 0),
      OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &reference, sizeof reference),
      OSSL_PARAM_END};
  return object_cb(params, object_cbarg);
}

const Key* key_from_reference(const void* reference, size_t size) {
  if (reference == nullptr || size != sizeof(Reference)) return nullptr;
  Reference r{};
  std::memcpy(&r, reference, sizeof r);
  return r.tag == kTag ? r.key : nullptr;
}

}  // namespace hsmsignd::provider
