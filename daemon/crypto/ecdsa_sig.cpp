#include "crypto/ecdsa_sig.h"

#include <openssl/bn.h>
#include <openssl/ec.h>

#include <algorithm>
#include <string>
#include <utility>

#include "crypto/openssl_ptr.h"

namespace hsmsignd::crypto {
namespace {

// Largest field we accept (P-521 would be 66); bounds the work before any parsing.
constexpr std::size_t kMaxFieldSize = 66;

// SEQUENCE { INTEGER r, INTEGER s }: each integer may carry a leading zero byte and a header of at most
// 3 bytes, the sequence header at most 3.
constexpr std::size_t max_der_size(std::size_t field_size) { return 3 + 2 * (3 + field_size + 1); }

bool valid_field_size(std::size_t field_size) { return field_size > 0 && field_size <= kMaxFieldSize; }

}  // namespace

Expected<Bytes, CryptoError> ecdsa_raw_to_der(ByteView raw, std::size_t field_size) {
  if (!valid_field_size(field_size)) return CryptoError{"ECDSA: unsupported field size"};
  if (raw.size() != 2 * field_size)
    return CryptoError{"ECDSA: raw signature is " + std::to_string(raw.size()) + " bytes, expected " +
                       std::to_string(2 * field_size)};

  const int half = static_cast<int>(field_size);
  BignumPtr r(BN_bin2bn(raw.data(), half, nullptr));
  BignumPtr s(BN_bin2bn(raw.data() + field_size, half, nullptr));
  if (!r || !s) return openssl_error("ECDSA: BN_bin2bn");
  if (BN_is_zero(r.get()) || BN_is_zero(s.get())) return CryptoError{"ECDSA: r or s is zero"};

  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return openssl_error("ECDSA: ECDSA_SIG_set0");
  // ECDSA_SIG_set0 took ownership of both numbers.
  (void)r.release();
  (void)s.release();

  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return openssl_error("ECDSA: i2d_ECDSA_SIG");
  Bytes der(static_cast<std::size_t>(len));
  unsigned char* out = der.data();
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return openssl_error("ECDSA: i2d_ECDSA_SIG");
  return der;
}

Expected<Bytes, CryptoError> ecdsa_der_to_raw(ByteView der, std::size_t field_size) {
  if (!valid_field_size(field_size)) return CryptoError{"ECDSA: unsupported field size"};
  if (der.empty() || der.size() > max_der_size(field_size))
    return CryptoError{"ECDSA: DER signature of " + std::to_string(der.size()) + " bytes is out of range"};

  const unsigned char* in = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &in, static_cast<long>(der.size())));
  if (!sig) return openssl_error("ECDSA: signature is not DER");
  if (in != der.data() + der.size()) return CryptoError{"ECDSA: trailing bytes after the DER signature"};

  // d2i accepts some BER; re-encoding and comparing keeps only the one canonical DER form, so a
  // signature has exactly one accepted encoding.
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) != der.size()) return CryptoError{"ECDSA: DER is not canonical"};
  Bytes again(der.size());
  unsigned char* out = again.data();
  i2d_ECDSA_SIG(sig.get(), &out);
  if (!std::equal(again.begin(), again.end(), der.begin())) return CryptoError{"ECDSA: DER is not canonical"};

  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes raw(2 * field_size);
  const int half = static_cast<int>(field_size);
  for (const auto& [value, offset] : {std::pair{r, std::size_t{0}}, std::pair{s, field_size}}) {
    if (BN_is_negative(value) || BN_is_zero(value)) return CryptoError{"ECDSA: r or s is zero or negative"};
    if (static_cast<std::size_t>(BN_num_bytes(value)) > field_size)
      return CryptoError{"ECDSA: r or s is longer than the field"};
    if (BN_bn2binpad(value, raw.data() + offset, half) != half) return openssl_error("ECDSA: BN_bn2binpad");
  }
  return raw;
}

}  // namespace hsmsignd::crypto
