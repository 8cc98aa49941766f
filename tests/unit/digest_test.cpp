#include "crypto/digest.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "test_support.h"

namespace hsmsignd::crypto {
namespace {

using test::hex;

// FIPS 180-2, Appendix B.1 and D.1: the one-block message "abc".
const Bytes kSha256OfAbc = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
const Bytes kSha384OfAbc = hex(
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
    "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");

TEST(Digest, MatchesTheFips180Vectors) {
  EXPECT_EQ(sha256(as_bytes("abc")), kSha256OfAbc);
  EXPECT_EQ(sha384(as_bytes("abc")), kSha384OfAbc);
  EXPECT_NE(sha256(as_bytes("abd")), kSha256OfAbc);  // tamper
  EXPECT_NE(sha384(as_bytes("abd")), kSha384OfAbc);
}

TEST(Digest, DigestForPicksTheHashOfTheAlgorithm) {
  for (auto a : {Algorithm::ES256, Algorithm::RS256, Algorithm::PS256}) {
    EXPECT_EQ(digest_for(a, as_bytes("abc")), kSha256OfAbc) << name(a);
    EXPECT_EQ(digest_for(a, as_bytes("abc")).size(), digest_size(a));
  }
  EXPECT_EQ(digest_for(Algorithm::ES384, as_bytes("abc")), kSha384OfAbc);
  EXPECT_EQ(digest_for(Algorithm::ES384, as_bytes("abc")).size(), digest_size(Algorithm::ES384));
}

TEST(Digest, EdDsaHasNoDigestAndSaysSo) {
  // Ed25519 signs the whole message: asking for its digest is a programming error, not empty bytes.
  EXPECT_THROW((void)digest_for(Algorithm::EdDSA, as_bytes("abc")), std::invalid_argument);
  EXPECT_EQ(md_for(Algorithm::EdDSA), nullptr);
}

}  // namespace
}  // namespace hsmsignd::crypto
