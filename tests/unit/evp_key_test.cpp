#include "crypto/evp_key.h"

#include <gtest/gtest.h>

#include "software_keys.h"
#include "test_support.h"

namespace hsmsignd::crypto {
namespace {

constexpr Algorithm kAll[] = {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                              Algorithm::EdDSA};

TEST(EvpKey, SoftwareKeysRoundTripThroughPublicKey) {
  for (auto algorithm : kAll) {
    SCOPED_TRACE(name(algorithm));
    EVP_PKEY* original = test::shared_key(algorithm);
    const auto key = from_evp(original, algorithm);
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(key->algorithm, algorithm);

    const auto rebuilt = to_evp(*key);
    ASSERT_TRUE(rebuilt) << rebuilt.error().message;
    EXPECT_EQ(EVP_PKEY_eq(original, rebuilt->get()), 1);
    // Tamper: another key of the same kind is not equal.
    EXPECT_NE(EVP_PKEY_eq(test::generate_key(algorithm).get(), rebuilt->get()), 1);
  }
  // The raw shapes the token uses.
  EXPECT_EQ(test::shared_public_key(Algorithm::ES256).point.size(), 65u);
  EXPECT_EQ(test::shared_public_key(Algorithm::ES256).point[0], 0x04);
  EXPECT_EQ(test::shared_public_key(Algorithm::ES384).point.size(), 97u);
  EXPECT_EQ(test::shared_public_key(Algorithm::EdDSA).point.size(), 32u);
  const PublicKey rsa = test::shared_public_key(Algorithm::RS256);
  EXPECT_EQ(rsa.modulus.size(), 256u);
  EXPECT_NE(rsa.modulus[0], 0);
  EXPECT_EQ(rsa.exponent, (Bytes{0x01, 0x00, 0x01}));
}

TEST(EvpKey, FromEvpRefusesAKeyOfAnotherAlgorithm) {
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::ES256), Algorithm::ES384));  // wrong curve
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::ES384), Algorithm::ES256));
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::RS256), Algorithm::ES256));
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::ES256), Algorithm::RS256));
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::EdDSA), Algorithm::ES256));
  EXPECT_FALSE(from_evp(test::shared_key(Algorithm::ES256), Algorithm::EdDSA));
  EXPECT_FALSE(from_evp(nullptr, Algorithm::ES256));
}

TEST(EvpKey, ToEvpRefusesMalformedEcAndEd25519Keys) {
  const PublicKey good = test::shared_public_key(Algorithm::ES256);
  ASSERT_TRUE(to_evp(good));

  auto with_point = [&](Bytes point) { return PublicKey{Algorithm::ES256, std::move(point), {}, {}}; };
  Bytes compressed_prefix = good.point;
  compressed_prefix[0] = 0x02;
  Bytes off_curve = good.point;
  off_curve.back() ^= 0x01;  // y changed: (x, y') is not on P-256
  Bytes all_zero(65, 0);
  all_zero[0] = 0x04;

  EXPECT_FALSE(to_evp(with_point(compressed_prefix)));
  EXPECT_FALSE(to_evp(with_point(off_curve)));
  EXPECT_FALSE(to_evp(with_point(all_zero)));
  EXPECT_FALSE(to_evp(with_point(Bytes(good.point.begin(), good.point.end() - 1))));  // 64 bytes
  EXPECT_FALSE(to_evp(with_point(Bytes(good.point.begin() + 1, good.point.end()))));  // X‖Y, no 0x04
  EXPECT_FALSE(to_evp(with_point({})));
  // A P-384 point is not a P-256 key, nor the reverse.
  EXPECT_FALSE(to_evp(with_point(test::shared_public_key(Algorithm::ES384).point)));
  EXPECT_FALSE(to_evp(PublicKey{Algorithm::ES384, good.point, {}, {}}));

  const PublicKey ed = test::shared_public_key(Algorithm::EdDSA);
  ASSERT_TRUE(to_evp(ed));
  EXPECT_FALSE(to_evp(PublicKey{Algorithm::EdDSA, Bytes(ed.point.begin(), ed.point.end() - 1), {}, {}}));
  Bytes longer = ed.point;
  longer.push_back(0);
  EXPECT_FALSE(to_evp(PublicKey{Algorithm::EdDSA, longer, {}, {}}));
}

TEST(EvpKey, ToEvpRefusesWeakOrMalformedRsaKeys) {
  const PublicKey good = test::shared_public_key(Algorithm::RS256);
  ASSERT_TRUE(to_evp(good));

  auto with = [&](Bytes n, Bytes e) { return PublicKey{Algorithm::RS256, {}, std::move(n), std::move(e)}; };
  // 2040 bits: one byte short of the 2048-bit minimum.
  EXPECT_FALSE(to_evp(with(Bytes(good.modulus.begin() + 1, good.modulus.end()), good.exponent)));
  // A real 1024-bit key.
  EvpPkeyPtr small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{1024}));
  ASSERT_TRUE(small);
  const auto small_key = from_evp(small.get(), Algorithm::RS256);
  ASSERT_TRUE(small_key);
  EXPECT_FALSE(to_evp(*small_key));
  // Exponents: even, 1, missing, longer than 64 bits.
  EXPECT_FALSE(to_evp(with(good.modulus, {0x01, 0x00, 0x00})));
  EXPECT_FALSE(to_evp(with(good.modulus, {0x01})));
  EXPECT_FALSE(to_evp(with(good.modulus, {})));
  EXPECT_FALSE(to_evp(with(good.modulus, Bytes(9, 0x01))));
  // An even modulus is not an RSA modulus.
  Bytes even = good.modulus;
  even.back() &= 0xFE;
  EXPECT_FALSE(to_evp(with(even, good.exponent)));
}

}  // namespace
}  // namespace hsmsignd::crypto
