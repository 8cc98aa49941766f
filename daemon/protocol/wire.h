// The frames between the front and its signer processes: a little-endian u32 length (of what follows),
// a u32 request id, a u8 type, then the payload. Fields are fixed-size integers and length-prefixed
// byte strings. A reader checks every length against what the frame holds: the signer trusts nothing
// the front sends, and the front trusts nothing a signer answers.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "hsmsignd/bytes.h"

namespace hsmsignd::protocol {

// A frame's length counts the id, the type and the payload. The largest payload is a JWS signing input
// for RSA or EdDSA (the token hashes those itself): [server] max_body is at most 16 MiB, and base64url
// makes 4 bytes of 3.
constexpr std::uint32_t kHeaderBytes = 5;
constexpr std::uint32_t kMaxFrame = 24 * 1024 * 1024;

// A field that does not fit, a count that the frame could not hold, bytes left over.
struct WireError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Frame {
  std::uint32_t id = 0;  // 0: an event the signer sends unasked
  std::uint8_t type = 0;
  std::string payload;
};

// Builds one frame; the length is filled in by finish().
class Writer {
 public:
  Writer(std::uint32_t id, std::uint8_t type);
  Writer& u8(std::uint8_t v);
  Writer& u32(std::uint32_t v);
  Writer& u64(std::uint64_t v);
  Writer& bytes(std::string_view v);
  Writer& bytes(ByteView v) { return bytes(std::string_view(reinterpret_cast<const char*>(v.data()), v.size())); }
  std::string finish();  // leaves the writer empty

 private:
  std::string out_;
};

// Reads a payload; every read throws WireError rather than run past the end.
class Reader {
 public:
  explicit Reader(std::string_view payload) : rest_(payload) {}
  std::uint8_t u8();
  std::uint32_t u32();
  std::uint64_t u64();
  bool flag();  // a u8 that must be 0 or 1
  std::string_view bytes(std::size_t max);  // at most `max` bytes, or WireError
  Bytes byte_vector(std::size_t max);
  // A count of entries of at least `min_entry` bytes each: never more than the frame could hold.
  std::uint32_t count(std::size_t min_entry);
  void end() const;  // nothing may be left over
  std::size_t left() const { return rest_.size(); }

 private:
  std::string_view take(std::size_t n);
  std::string_view rest_;
};

// Splits a byte stream into frames. feed() the bytes read; next() hands out each whole frame.
class FrameParser {
 public:
  void feed(const char* data, std::size_t n) { buffer_.append(data, n); }
  // A whole frame, nullopt when more bytes are needed; WireError for a length no frame can have (the
  // stream cannot be trusted after that).
  std::optional<Frame> next();

 private:
  std::string buffer_;
  std::size_t start_ = 0;
};

}  // namespace hsmsignd::protocol
