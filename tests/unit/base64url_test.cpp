#include "jose/base64url.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "test_support.h"

namespace hsmsignd::jose {
namespace {

// RFC 4648 §10, with the '=' padding removed as RFC 7515 §2 requires.
const std::pair<std::string, std::string> kRfc4648Vectors[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},        {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64Url, EncodesAndDecodesTheRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfc4648Vectors) {
    EXPECT_EQ(base64url_encode(as_bytes(plain)), encoded) << "input: " << plain;
    EXPECT_EQ(base64url_encoded_size(plain.size()), encoded.size());
    EXPECT_EQ(base64url_decode(encoded), Bytes(plain.begin(), plain.end())) << "input: " << encoded;
  }
  // Appending keeps what the caller already wrote.
  std::string out = "head.";
  base64url_append(out, as_bytes("foobar"));
  EXPECT_EQ(out, "head.Zm9vYmFy");
  // Tamper: one changed character decodes to different bytes.
  EXPECT_NE(base64url_decode("Zm9vYmFz"), base64url_decode("Zm9vYmFy"));
}

TEST(Base64Url, UsesTheUrlSafeAlphabet) {
  // 0xFB 0xFF 0xBF is "+/+/" in standard base64.
  const Bytes bytes = {0xFB, 0xFF, 0xBF};
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  EXPECT_EQ(base64url_decode("-_-_"), bytes);
  EXPECT_FALSE(base64url_decode("+/+/"));
}

TEST(Base64Url, RoundTripsEveryByteValueAtEveryLength) {
  Bytes all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<std::uint8_t>(255 - i));
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const ByteView prefix(all.data(), len);
    const std::string encoded = base64url_encode(prefix);
    ASSERT_EQ(encoded.size(), base64url_encoded_size(len));
    const auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded) << "length " << len;
    EXPECT_TRUE(std::equal(decoded->begin(), decoded->end(), prefix.begin(), prefix.end()));
  }
}

TEST(Base64Url, RefusesPaddingAndCharactersOutsideTheAlphabet) {
  for (const char* bad : {"Zg==", "Zm8=", "Zm9vYg==", "====", "Zm+v", "Zm/v", " Zg", "Zg ", "Zm9v\n", "Zm 9v",
                          "Zm\t8", "Zm9v.", "Zm9\x80"})
    EXPECT_FALSE(base64url_decode(bad)) << "accepted: " << bad;
  EXPECT_FALSE(base64url_decode(std::string_view("Zm\0v", 4)));
  EXPECT_TRUE(base64url_decode("Zm9v"));  // the untampered text
}

TEST(Base64Url, RefusesTheImpossibleLength4kPlus1) {
  EXPECT_FALSE(base64url_decode("Z"));
  EXPECT_FALSE(base64url_decode("Zm9vY"));
  EXPECT_FALSE(base64url_decode("Zm9vYmFyZ"));
}

TEST(Base64Url, RefusesNonCanonicalTrailingBits) {
  // "Zg" is "f"; "Zh" carries the same byte with a stray bit in the unused low four bits.
  EXPECT_TRUE(base64url_decode("Zg"));
  EXPECT_FALSE(base64url_decode("Zh"));
  EXPECT_FALSE(base64url_decode("Zv"));
  // "Zm8" is "fo"; "Zm9" sets one of the two unused low bits.
  EXPECT_TRUE(base64url_decode("Zm8"));
  EXPECT_FALSE(base64url_decode("Zm9"));
}

}  // namespace
}  // namespace hsmsignd::jose
