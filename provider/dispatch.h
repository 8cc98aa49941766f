// The provider's algorithm tables, one function each, for provider.cpp to list.
#pragma once

#include <openssl/core.h>

namespace hsmsignd::provider {

const OSSL_DISPATCH* ec_keymgmt();
const OSSL_DISPATCH* rsa_keymgmt();
const OSSL_DISPATCH* rsa_pss_keymgmt();
const OSSL_DISPATCH* ecdsa_signature();
const OSSL_DISPATCH* rsa_signature();
const OSSL_DISPATCH* uri_store();
const OSSL_DISPATCH* pem_uri_decoder();
const OSSL_DISPATCH* ec_uri_decoder();
const OSSL_DISPATCH* rsa_uri_decoder();

}  // namespace hsmsignd::provider
