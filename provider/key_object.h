// How the STORE and the DECODER hand a loaded key to OpenSSL: an object of type PKEY whose reference
// points at the Key, which this provider's KEYMGMT load() copies before the callback returns.
//
// The reference is not a bare pointer. OpenSSL 3.0 can give a reference to another provider's load() (its
// `file:` store does, for what a decoder of ours found in a file), and the default provider's load() takes
// any pointer-sized reference for one of its own objects. A reference of another size, with a tag, is
// refused there instead of being read as a foreign object.
#pragma once

#include <openssl/core.h>

#include "key.h"

namespace hsmsignd::provider {

int pass_key(const Key& key, OSSL_CALLBACK* object_cb, void* object_cbarg);

// The Key a reference from pass_key points at; nullptr for any other reference.
const Key* key_from_reference(const void* reference, size_t size);

}  // namespace hsmsignd::provider
