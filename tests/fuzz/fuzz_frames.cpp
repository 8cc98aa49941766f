// The frames between the front and its signer processes (daemon/protocol): the input is a byte stream
// as a signer (or the front) reads it off its socketpair, cut into reads at the places its first bytes
// say. Each frame is decoded as every message type it could claim to be.
//
// Invariants: WireError is the only exception; a frame the parser hands out has 5 to kMaxFrame bytes
// and its payload is the bytes the length said; a sign request that decodes has a key id of 1 to kMaxId
// bytes and, when it is a digest, exactly the size of its hash, with a padding its key type has (never
// EdDSA), and a message only with its algorithm's own hash and padding; a key spec
// that decodes has an RSA size of 2048, 3072 or 4096; a list never has more entries than its bytes
// could hold.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace {

using namespace hsmsignd;
using namespace hsmsignd::protocol;

template <class F>
void decoded(const std::string& payload, F read) {
  Reader r(payload);
  try {
    read(r);
  } catch (const WireError&) {
  }
}

void check_frame(const Frame& f) {
  FUZZ_CHECK(f.payload.size() + kHeaderBytes <= kMaxFrame, "a payload longer than any frame");
  decoded(f.payload, [&](Reader& r) {
    const SignRequest s = read_sign_request(r);
    FUZZ_CHECK(!s.key_id.empty() && s.key_id.size() <= kMaxId, "a sign request's key id out of bounds");
    if (s.digest)
      FUZZ_CHECK(digest_size(s.algorithm) != 0 && scheme_fits(s.algorithm, s.scheme) &&
                     s.data.size() == hash_size(s.scheme.hash),
                 "a digest of the wrong size or padding decoded");
    else
      FUZZ_CHECK(s.scheme == default_scheme(s.algorithm), "a message with another hash or padding decoded");
  });
  decoded(f.payload, [&](Reader& r) {
    const auto spec = read_key_spec(r);
    if (key_type(spec.algorithm) == KeyType::RSA)
      FUZZ_CHECK(spec.rsa_bits == 2048 || spec.rsa_bits == 3072 || spec.rsa_bits == 4096, "an RSA size decoded");
  });
  decoded(f.payload, [&](Reader& r) {
    const auto keys = read_keys(r);
    FUZZ_CHECK(keys.size() <= f.payload.size() / 30, "more keys than the frame could hold");
  });
  decoded(f.payload, [&](Reader& r) { (void)read_public_objects(r); });
  decoded(f.payload, [&](Reader& r) { (void)read_stats(r); });
  decoded(f.payload, [&](Reader& r) {
    (void)read_public_key(r);
    r.end();
  });
  decoded(f.payload, [&](Reader& r) {
    (void)read_token(r);
    (void)r.u32();
    r.end();
  });
  decoded(f.payload, [&](Reader& r) { (void)read_error(r); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  // The first byte says how the stream is cut into reads, so that frames split across reads are tried.
  const std::size_t step = size > 0 ? 1 + data[0] % 64 : 1;
  FrameParser parser;
  try {
    for (std::size_t at = size > 0 ? 1 : 0; at < size; at += step) {
      parser.feed(bytes + at, std::min(step, size - at));
      while (auto frame = parser.next()) check_frame(*frame);
    }
  } catch (const WireError&) {
    // An impossible length: the reader stops there, as the signer does.
  }
  return 0;
}
