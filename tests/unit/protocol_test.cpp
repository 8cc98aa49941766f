// The frames between the front and its signers: whatever arrives, a reader never runs past a frame,
// never allocates for a count the frame cannot hold, and refuses leftovers and impossible values.
#include <gtest/gtest.h>

#include <string>

#include "protocol/messages.h"
#include "protocol/wire.h"

namespace hsmsignd::protocol {
namespace {

std::string u32le(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string payload_of(const std::string& frame) { return frame.substr(9); }

TEST(FrameParser, SplitsAStreamCutAnywhereIntoTheFramesThatWereSent) {
  std::string stream;
  for (std::uint32_t id = 1; id <= 20; ++id)
    stream += Writer(id, 8).bytes(std::string(id * 7, static_cast<char>('a' + id))).finish();
  for (std::size_t chunk : {1u, 3u, 7u, 64u, 100000u}) {
    FrameParser parser;
    std::vector<Frame> frames;
    for (std::size_t at = 0; at < stream.size(); at += chunk) {
      parser.feed(stream.data() + at, std::min(chunk, stream.size() - at));
      while (auto f = parser.next()) frames.push_back(std::move(*f));
    }
    ASSERT_EQ(frames.size(), 20u) << "chunks of " << chunk;
    for (std::uint32_t id = 1; id <= 20; ++id) {
      EXPECT_EQ(frames[id - 1].id, id);
      EXPECT_EQ(frames[id - 1].type, 8);
      Reader r(frames[id - 1].payload);
      EXPECT_EQ(r.bytes(1000), std::string(id * 7, static_cast<char>('a' + id)));
      r.end();
    }
  }
}

TEST(FrameParser, RefusesALengthNoFrameCanHave) {
  for (std::uint32_t length : {0u, 4u, kMaxFrame + 1, 0xffffffffu}) {
    FrameParser parser;
    const std::string header = u32le(length) + std::string(5, '\0');
    parser.feed(header.data(), header.size());
    EXPECT_THROW(parser.next(), WireError) << length;
  }
  FrameParser parser;  // the largest allowed length waits for its bytes
  const std::string header = u32le(kMaxFrame);
  parser.feed(header.data(), header.size());
  EXPECT_FALSE(parser.next());
}

TEST(Reader, NeverRunsPastTheFrame) {
  const std::string p = u32le(0xffffffffu) + "abc";
  Reader r(p);
  EXPECT_THROW(r.bytes(kMaxFrame), WireError);
  const std::string three(3, '\0'), bad_flag(1, '\2'), two(2, '\0'), ten = u32le(10) + std::string(10, 'x');
  Reader small(three);
  EXPECT_THROW(small.u32(), WireError);
  Reader over(ten);
  EXPECT_THROW(over.bytes(9), WireError) << "a field longer than its bound";
  Reader flag(bad_flag);
  EXPECT_THROW(flag.flag(), WireError);
  Reader left(two);
  left.u8();
  EXPECT_THROW(left.end(), WireError);
}

TEST(Reader, ACountIsBoundedByWhatTheFrameHolds) {
  // A list_keys answer claiming four billion keys in a few bytes: refused before anything is allocated.
  const std::string p = u32le(0xffffffffu) + std::string(40, '\0');
  Reader r(p);
  EXPECT_THROW(read_keys(r), WireError);
}

// Whether read_sign_request refuses the frame's payload.
bool refused(const std::string& frame) {
  const std::string payload = payload_of(frame);
  Reader r(payload);
  try {
    (void)read_sign_request(r);
    return false;
  } catch (const WireError&) {
    return true;
  }
}

TEST(SignRequest, RefusesWhatNoSignatureCanBeMadeOf) {
  const Bytes id{1, 2, 3};
  EXPECT_FALSE(refused(sign_request(1, Algorithm::ES256, true, id, std::string(32, 'd'))));
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES256, true, id, std::string(5, 'd')))) << "a digest of 5 bytes";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES384, true, id, std::string(32, 'd')))) << "ES384 digests are 48";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::EdDSA, true, id, std::string(32, 'd')))) << "EdDSA signs messages";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES256, false, Bytes{}, "m"))) << "no key id";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES256, false, id, "m") + "x")) << "a byte left over";
  EXPECT_TRUE(refused(Writer(1, 1).u8(9).u8(0).u8(0).u8(0).bytes(id).bytes(std::string("m")).finish())) << "algorithm 9";
  EXPECT_TRUE(refused(Writer(1, 1).u8(0).u8(2).u8(0).u8(0).bytes(id).bytes(std::string("m")).finish())) << "digest flag 2";
  EXPECT_TRUE(refused(Writer(1, 1).u8(0).u8(0).u8(3).u8(0).bytes(id).bytes(std::string("m")).finish())) << "hash 3";
  EXPECT_TRUE(refused(Writer(1, 1).u8(2).u8(1).u8(0).u8(3).bytes(id).bytes(std::string(32, 'd')).finish())) << "padding 3";
  EXPECT_TRUE(refused(Writer(1, 1).u8(0).u8(0).u8(0).u8(0).bytes(Bytes(300, 1)).bytes(std::string("m")).finish()))
      << "key id of 300";
  EXPECT_FALSE(refused(Writer(1, 1).u8(0).u8(0).u8(0).u8(0).bytes(id).bytes(std::string("m")).finish()))
      << "the layout: algorithm, digest flag, hash, padding, key id, data";
}

TEST(SignRequest, CarriesTheHashAndPaddingOfADigest) {
  const Bytes id{1, 2, 3};
  const DigestScheme pss512{Hash::sha512, Padding::pss};
  const std::string payload = payload_of(sign_request(1, Algorithm::RS256, true, pss512, id, std::string(64, 'd')));
  Reader r(payload);
  const SignRequest s = read_sign_request(r);
  EXPECT_EQ(s.scheme, pss512);
  EXPECT_EQ(s.data.size(), 64u);
  const std::string plain = payload_of(sign_request(1, Algorithm::ES384, true, id, std::string(48, 'd')));
  Reader p(plain);
  EXPECT_EQ(read_sign_request(p).scheme, (DigestScheme{Hash::sha384, Padding::none})) << "the algorithm's own";
}

TEST(SignRequest, RefusesASchemeTheFrontNeverAsksFor) {
  const Bytes id{1, 2, 3};
  EXPECT_FALSE(refused(sign_request(1, Algorithm::ES256, true, {Hash::sha512, Padding::none}, id, std::string(64, 'd'))))
      << "P-256 signs a SHA-512 digest (truncated)";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES256, true, {Hash::sha512, Padding::none}, id, std::string(32, 'd'))))
      << "a SHA-512 digest is 64 bytes";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::ES256, true, {Hash::sha256, Padding::pss}, id, std::string(32, 'd'))))
      << "no padding on an EC key";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::RS256, true, {Hash::sha256, Padding::none}, id, std::string(32, 'd'))))
      << "an RSA key needs a padding";
  EXPECT_TRUE(refused(sign_request(1, Algorithm::RS256, false, {Hash::sha384, Padding::pkcs1}, id, "message")))
      << "a message is signed with its algorithm's own scheme";
}

TEST(KeySpec, RefusesAnRsaSizeTheDaemonNeverAsksFor) {
  auto spec = [](Algorithm a, std::uint32_t bits) {
    return payload_of(Writer(1, 4).u8(algorithm_code(a)).u32(bits).bytes(Bytes{1}).bytes(std::string("l")).finish());
  };
  for (std::uint32_t bits : {2048u, 3072u, 4096u}) {
    const std::string payload = spec(Algorithm::RS256, bits);
    Reader r(payload);
    EXPECT_EQ(read_key_spec(r).rsa_bits, bits);
  }
  const std::string odd_payload = spec(Algorithm::PS256, 1234);
  Reader odd(odd_payload);
  EXPECT_THROW(read_key_spec(odd), WireError);
}

TEST(Messages, KeysErrorsAndStatsComeBackAsTheyWereSent) {
  pkcs11::KeyObject k;
  k.id = {9, 8, 7};
  k.label = "hsmsignd/default/1/1";
  k.type = KeyType::RSA;
  k.bits = 3072;
  k.private_key = 11;
  k.public_key = 0;  // no public object: the keyring must still see that
  k.custody = {true, true, true, false, true};
  Writer w(1, 128);
  write_keys(w, {k, k});
  const std::string keys_payload = payload_of(w.finish());
  Reader r(keys_payload);
  const auto keys = read_keys(r);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1].id, k.id);
  EXPECT_EQ(keys[1].label, k.label);
  EXPECT_EQ(keys[1].bits, 3072u);
  EXPECT_EQ(keys[1].public_key, 0u);
  EXPECT_TRUE(pkcs11::CustodyPolicy{}.trustworthy(keys[1].custody));

  const auto e = pkcs11::Error::token("C_Sign", 0x30, "signing");
  const std::string error_payload = payload_of(error_frame(5, e));
  Reader er(error_payload);
  const auto back = read_error(er);
  EXPECT_EQ(back.what(), e.what());
  EXPECT_TRUE(back.device_fault());

  SignerStats s;
  s.sessions = 2;
  s.recoveries = 3;
  s.calls.push_back({"C_Sign", 10, 1, 5000, {}});
  s.calls[0].buckets[2] = 10;
  Writer sw(1, 128);
  write_stats(sw, s);
  const std::string stats_payload = payload_of(sw.finish());
  Reader sr(stats_payload);
  const auto stats = read_stats(sr);
  EXPECT_EQ(stats.sessions, 2u);
  EXPECT_EQ(stats.recoveries, 3u);
  ASSERT_EQ(stats.calls.size(), 1u);
  EXPECT_EQ(stats.calls[0].function, "C_Sign");
  EXPECT_EQ(stats.calls[0].buckets[2], 10u);
}

}  // namespace
}  // namespace hsmsignd::protocol
