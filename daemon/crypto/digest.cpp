#include "crypto/digest.h"

#include <stdexcept>
#include <string>

#include "crypto/crypto_error.h"
#include "crypto/openssl_ptr.h"

namespace hsmsignd::crypto {
namespace {

// Fetch once: OpenSSL 3 re-fetches an implicit EVP_sha256() on every init, which takes a lock on the
// provider store (see crypto(7), "Performance"). The hash sits on the path of every signature.
EvpMdPtr fetch(const char* name) {
  EvpMdPtr md(EVP_MD_fetch(nullptr, name, nullptr));
  // Only a broken OpenSSL configuration (no provider offering SHA-2) gets here: a start-up failure.
  if (!md) throw std::runtime_error(openssl_error(std::string("EVP_MD_fetch ") + name).message);
  return md;
}

const EVP_MD* sha256_md() {
  static const EvpMdPtr md = fetch("SHA2-256");
  return md.get();
}

const EVP_MD* sha384_md() {
  static const EvpMdPtr md = fetch("SHA2-384");
  return md.get();
}

const EVP_MD* sha512_md() {
  static const EvpMdPtr md = fetch("SHA2-512");
  return md.get();
}

Bytes digest_with(const EVP_MD* md, ByteView data) {
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 || len != out.size())
    throw std::runtime_error(openssl_error("EVP_Digest").message);  // allocation failure only
  return out;
}

}  // namespace

Bytes sha256(ByteView data) { return digest_with(sha256_md(), data); }
Bytes sha384(ByteView data) { return digest_with(sha384_md(), data); }

const EVP_MD* sha2_md(std::size_t digest_size) {
  switch (digest_size) {
    case 32: return sha256_md();
    case 48: return sha384_md();
    case 64: return sha512_md();
    default: return nullptr;
  }
}

const EVP_MD* md_for(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::ES256:
    case Algorithm::RS256:
    case Algorithm::PS256: return sha256_md();
    case Algorithm::ES384: return sha384_md();
    case Algorithm::EdDSA: return nullptr;
  }
  return nullptr;
}

Bytes digest_for(Algorithm algorithm, ByteView message) {
  const EVP_MD* md = md_for(algorithm);
  if (md == nullptr)
    throw std::invalid_argument("digest_for: EdDSA signs the whole message, it has no digest");
  return digest_with(md, message);
}

}  // namespace hsmsignd::crypto
