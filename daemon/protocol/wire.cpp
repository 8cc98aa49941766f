#include "protocol/wire.h"

#include <cstring>

namespace hsmsignd::protocol {
namespace {

template <class T>
void put(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <class T>
T get(std::string_view s) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(s[i])) << (8 * i);
  return v;
}

}  // namespace

Writer::Writer(std::uint32_t id, std::uint8_t type) {
  out_.reserve(64);
  put<std::uint32_t>(out_, 0);
  put(out_, id);
  out_.push_back(static_cast<char>(type));
}

Writer& Writer::u8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}
Writer& Writer::u32(std::uint32_t v) {
  put(out_, v);
  return *this;
}
Writer& Writer::u64(std::uint64_t v) {
  put(out_, v);
  return *this;
}
Writer& Writer::bytes(std::string_view v) {
  put(out_, static_cast<std::uint32_t>(v.size()));
  out_.append(v);
  return *this;
}

std::string Writer::finish() {
  const auto length = static_cast<std::uint32_t>(out_.size() - 4);
  std::string header;
  put(header, length);
  std::memcpy(out_.data(), header.data(), 4);
  return std::move(out_);
}

std::string_view Reader::take(std::size_t n) {
  if (n > rest_.size()) throw WireError("a field runs past the end of the frame");
  auto out = rest_.substr(0, n);
  rest_.remove_prefix(n);
  return out;
}

std::uint8_t Reader::u8() { return static_cast<std::uint8_t>(take(1)[0]); }
std::uint32_t Reader::u32() { return get<std::uint32_t>(take(4)); }
std::uint64_t Reader::u64() { return get<std::uint64_t>(take(8)); }

bool Reader::flag() {
  const auto v = u8();
  if (v > 1) throw WireError("a flag is neither 0 nor 1");
  return v == 1;
}

std::string_view Reader::bytes(std::size_t max) {
  const std::uint32_t n = u32();
  if (n > max) throw WireError("a field of " + std::to_string(n) + " bytes, more than its " + std::to_string(max));
  return take(n);
}

Bytes Reader::byte_vector(std::size_t max) {
  const auto b = bytes(max);
  return Bytes(b.begin(), b.end());
}

std::uint32_t Reader::count(std::size_t min_entry) {
  const std::uint32_t n = u32();
  if (min_entry > 0 && n > rest_.size() / min_entry) throw WireError("a count of entries the frame cannot hold");
  return n;
}

void Reader::end() const {
  if (!rest_.empty()) throw WireError(std::to_string(rest_.size()) + " bytes left over after the last field");
}

std::optional<Frame> FrameParser::next() {
  const std::size_t have = buffer_.size() - start_;
  if (have < 4) {
    if (start_ > 0 && have == 0) buffer_.clear(), start_ = 0;
    return std::nullopt;
  }
  const std::string_view view(buffer_.data() + start_, have);
  const auto length = get<std::uint32_t>(view);
  if (length < kHeaderBytes || length > kMaxFrame)
    throw WireError("a frame of " + std::to_string(length) + " bytes (5 to " + std::to_string(kMaxFrame) + " allowed)");
  if (have - 4 < length) {
    // Keep the partial frame at the front, so the buffer holds at most one frame and the next read.
    if (start_ > 0) buffer_.erase(0, start_), start_ = 0;
    return std::nullopt;
  }
  Frame f;
  f.id = get<std::uint32_t>(view.substr(4));
  f.type = static_cast<std::uint8_t>(view[8]);
  f.payload.assign(view.substr(4 + kHeaderBytes, length - kHeaderBytes));
  start_ += 4 + length;
  if (start_ == buffer_.size()) buffer_.clear(), start_ = 0;
  return f;
}

}  // namespace hsmsignd::protocol
