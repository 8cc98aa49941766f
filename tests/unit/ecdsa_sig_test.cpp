#include "crypto/ecdsa_sig.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace hsmsignd::crypto {
namespace {

using test::hex;

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes repeat(std::uint8_t byte, std::size_t n) { return Bytes(n, byte); }

TEST(EcdsaSig, EncodesToMinimalDerAndBack) {
  // r = 1, s = 2 on P-256: SEQUENCE { INTEGER 1, INTEGER 2 }.
  const Bytes small_raw = concat({repeat(0, 31), {0x01}, repeat(0, 31), {0x02}});
  const Bytes small_der = hex("3006020101020102");
  EXPECT_EQ(ecdsa_raw_to_der(small_raw, 32).value(), small_der);
  EXPECT_EQ(ecdsa_der_to_raw(small_der, 32).value(), small_raw);
  // Tamper: s = 3 is another signature.
  EXPECT_NE(ecdsa_der_to_raw(hex("3006020101020103"), 32).value(), small_raw);

  // r = 0x80 00…00 would read as negative without the 0x00 that DER puts in front of it.
  const Bytes high_raw = concat({{0x80}, repeat(0, 31), repeat(0, 31), {0x01}});
  const Bytes high_der = concat({hex("3026022100"), {0x80}, repeat(0, 31), hex("020101")});
  EXPECT_EQ(ecdsa_raw_to_der(high_raw, 32).value(), high_der);
  EXPECT_EQ(ecdsa_der_to_raw(high_der, 32).value(), high_raw);
}

TEST(EcdsaSig, RawToDerToRawRoundTripsOnBothCurves) {
  for (std::size_t field : {std::size_t{32}, std::size_t{48}}) {
    // Leading zeros in r (they must come back as padding) and all ones in s.
    const Bytes raw = concat({{0x00, 0x00, 0x7F}, repeat(0xA5, field - 3), repeat(0xFF, field)});
    const auto der = ecdsa_raw_to_der(raw, field);
    ASSERT_TRUE(der) << der.error().message;
    EXPECT_EQ(ecdsa_der_to_raw(*der, field).value(), raw) << "field " << field;
  }
}

TEST(EcdsaSig, RawToDerRefusesBadLengthsAndZeroValues) {
  for (std::size_t len : {0, 1, 31, 63, 65, 96, 128})
    EXPECT_FALSE(ecdsa_raw_to_der(repeat(0x11, len), 32)) << "accepted " << len << " bytes for P-256";
  EXPECT_FALSE(ecdsa_raw_to_der(repeat(0x11, 64), 48));  // a P-256 signature offered as P-384
  EXPECT_FALSE(ecdsa_raw_to_der({}, 0));
  EXPECT_FALSE(ecdsa_raw_to_der(concat({repeat(0, 32), repeat(1, 32)}), 32));  // r = 0
  EXPECT_FALSE(ecdsa_raw_to_der(concat({repeat(1, 32), repeat(0, 32)}), 32));  // s = 0
  EXPECT_TRUE(ecdsa_raw_to_der(concat({repeat(1, 32), repeat(1, 32)}), 32));   // the untampered pair
}

TEST(EcdsaSig, DerToRawRefusesOversizeValuesAndNonCanonicalDer) {
  // r has 33 significant bytes: it cannot be a P-256 scalar, though it fits P-384's field.
  const Bytes oversize = concat({hex("3026022101"), repeat(0, 32), hex("020101")});
  EXPECT_FALSE(ecdsa_der_to_raw(oversize, 32));
  EXPECT_TRUE(ecdsa_der_to_raw(oversize, 48));

  ASSERT_TRUE(ecdsa_der_to_raw(hex("3006020101020102"), 32));
  const Bytes bad[] = {
      {},                           // empty
      hex("30060201010201"),        // truncated
      hex("300602010102010200"),    // trailing byte
      hex("308106020101020102"),    // long-form length where the short form fits
      hex("30800201010201020000"),  // BER indefinite length
      hex("300702020001020102"),    // INTEGER with a superfluous leading zero
      hex("3006020181020102"),      // negative r
      hex("3006020100020102"),      // r = 0
      hex("3106020101020102"),      // a SET, not a SEQUENCE
      repeat(0x30, 200),            // longer than any P-256 signature
  };
  for (const auto& der : bad) EXPECT_FALSE(ecdsa_der_to_raw(der, 32)) << testing::PrintToString(der);
}

}  // namespace
}  // namespace hsmsignd::crypto
