// DECODER for a key URI wrapped in PEM, so that a program that only reads key files (nginx 1.22 has no
// `store:` support) loads a daemon key unmodified:
//
//   -----BEGIN HSMSIGND KEY URI-----
//   <base64 of "hsmsignd:kid=..." or "hsmsignd:keyset=...">
//   -----END HSMSIGND KEY URI-----
//
// Two steps, as OpenSSL chains decoders: PEM to the URI's bytes (structure "hsmsignd-uri"), then those
// bytes to an EC or RSA key. Input that is not ours is passed over (return 1 without an object), so the
// other providers' decoders still read ordinary key files.
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/pem.h>

#include <cstring>
#include <string>

#include "dispatch.h"
#include "key.h"
#include "key_object.h"

namespace hsmsignd::provider {
namespace {

constexpr const char* kPemLabel = "HSMSIGND KEY URI";
constexpr const char* kStructure = "hsmsignd-uri";
constexpr int kCarryOn = 1;  // nothing decoded here; OpenSSL tries the next decoder

using BioPtr = std::unique_ptr<BIO, crypto::OpensslDeleter<&BIO_free>>;

struct OpensslString {
  char* p = nullptr;
  ~OpensslString() { OPENSSL_free(p); }
};

void* decoder_newctx(void* provctx) noexcept { return provctx; }
void decoder_freectx(void* /*ctx*/) noexcept {}

int pem_decode(void* ctx, OSSL_CORE_BIO* in, int /*selection*/, OSSL_CALLBACK* object_cb, void* object_cbarg,
               OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) noexcept {
  BioPtr bio(BIO_new_from_core_bio(context_of(ctx).libctx(), in));
  if (!bio) return kCarryOn;
  OpensslString name, header;
  unsigned char* data = nullptr;
  long length = 0;
  if (PEM_read_bio(bio.get(), &name.p, &header.p, &data, &length) <= 0) return kCarryOn;
  OpensslString owned_data{reinterpret_cast<char*>(data)};
  if (std::strcmp(name.p, kPemLabel) != 0) return kCarryOn;
  OSSL_PARAM params[] = {
      OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, data, static_cast<size_t>(length)),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, const_cast<char*>(kStructure), 0),
      OSSL_PARAM_END};
  return object_cb(params, object_cbarg);
}

template <const char* Type>
int uri_decode(void* ctx, OSSL_CORE_BIO* in, int /*selection*/, OSSL_CALLBACK* object_cb, void* object_cbarg,
               OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) noexcept {
  ProviderContext& provider = context_of(ctx);
  BioPtr bio(BIO_new_from_core_bio(provider.libctx(), in));
  if (!bio) return kCarryOn;
  try {
    char buffer[512];
    const int n = BIO_read(bio.get(), buffer, sizeof buffer);
    if (n <= 0) return kCarryOn;
    std::string text(buffer, static_cast<std::size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto uri = parse_uri(text);
    if (!uri) {
      provider.raise(kBadUri, "the HSMSIGND KEY URI file holds no key URI (hsmsignd:keyset=NAME or hsmsignd:kid=KID)");
      return kCarryOn;
    }
    auto key = load_key(provider, *uri);
    if (!key || key->type() != Type) return kCarryOn;
    return pass_key(*key, object_cb, object_cbarg);
  } catch (...) {
    return kCarryOn;
  }
}

constexpr char kEc[] = "EC";
constexpr char kRsa[] = "RSA";

// Asked only when another provider's key management would take the key: refused, as for the STORE.
int decoder_export_object(void*, const void*, size_t, OSSL_CALLBACK*, void*) noexcept { return 0; }

const OSSL_DISPATCH kPemDecoder[] = {
    {OSSL_FUNC_DECODER_NEWCTX, reinterpret_cast<void (*)()>(&decoder_newctx)},
    {OSSL_FUNC_DECODER_FREECTX, reinterpret_cast<void (*)()>(&decoder_freectx)},
    {OSSL_FUNC_DECODER_DECODE, reinterpret_cast<void (*)()>(&pem_decode)},
    {0, nullptr}};

template <const char* Type>
const OSSL_DISPATCH kUriDecoder[] = {
    {OSSL_FUNC_DECODER_NEWCTX, reinterpret_cast<void (*)()>(&decoder_newctx)},
    {OSSL_FUNC_DECODER_FREECTX, reinterpret_cast<void (*)()>(&decoder_freectx)},
    {OSSL_FUNC_DECODER_DECODE, reinterpret_cast<void (*)()>(&uri_decode<Type>)},
    {OSSL_FUNC_DECODER_EXPORT_OBJECT, reinterpret_cast<void (*)()>(&decoder_export_object)},
    {0, nullptr}};

}  // namespace

const OSSL_DISPATCH* pem_uri_decoder() { return kPemDecoder; }
const OSSL_DISPATCH* ec_uri_decoder() { return kUriDecoder<kEc>; }
const OSSL_DISPATCH* rsa_uri_decoder() { return kUriDecoder<kRsa>; }

}  // namespace hsmsignd::provider
