#include "protocol/messages.h"

#include <algorithm>
#include <cctype>

namespace hsmsignd::protocol {
namespace {

constexpr Algorithm kAlgorithms[] = {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                                     Algorithm::EdDSA};
constexpr std::size_t kMinKeyEntry = 4 + 4 + 1 + 4 + 8 + 8 + 1;

std::string text(Reader& r) { return std::string(r.bytes(kMaxText)); }

// What a reader refuses is never written: a longer text is cut, an object that cannot be hsmsignd's
// (its CKA_ID or label past the bounds) is left out of a listing.
std::string_view capped(std::string_view s, std::size_t max) { return s.substr(0, max); }

bool fits_bounds(const Bytes& id, const std::string& label) { return id.size() <= kMaxId && label.size() <= kMaxLabel; }

}  // namespace

std::uint8_t algorithm_code(Algorithm a) {
  for (std::uint8_t i = 0; i < std::size(kAlgorithms); ++i)
    if (kAlgorithms[i] == a) return i;
  return 0;
}

Algorithm read_algorithm(Reader& r) {
  const auto code = r.u8();
  if (code >= std::size(kAlgorithms)) throw WireError("algorithm " + std::to_string(code) + " is none hsmsignd knows");
  return kAlgorithms[code];
}

std::string sign_request(std::uint32_t id, Algorithm algorithm, bool digest, ByteView key_id, std::string_view data) {
  return sign_request(id, algorithm, digest, default_scheme(algorithm), key_id, data);
}

std::string sign_request(std::uint32_t id, Algorithm algorithm, bool digest, DigestScheme scheme, ByteView key_id,
                         std::string_view data) {
  return Writer(id, static_cast<std::uint8_t>(Type::sign)).u8(algorithm_code(algorithm)).u8(digest ? 1 : 0)
      .u8(static_cast<std::uint8_t>(scheme.hash)).u8(static_cast<std::uint8_t>(scheme.padding))
      .bytes(key_id).bytes(data).finish();
}

SignRequest read_sign_request(Reader& r) {
  SignRequest s;
  s.algorithm = read_algorithm(r);
  s.digest = r.flag();
  const auto hash = r.u8(), padding = r.u8();
  if (hash > static_cast<std::uint8_t>(Hash::sha512)) throw WireError("hash " + std::to_string(hash) + " is none hsmsignd knows");
  if (padding > static_cast<std::uint8_t>(Padding::pss))
    throw WireError("padding " + std::to_string(padding) + " is none hsmsignd knows");
  s.scheme = {static_cast<Hash>(hash), static_cast<Padding>(padding)};
  s.key_id = r.byte_vector(kMaxId);
  s.data = r.bytes(kMaxFrame);
  r.end();
  if (s.key_id.empty()) throw WireError("an empty key id");
  if (!s.digest && s.scheme != default_scheme(s.algorithm))
    throw WireError("a message for " + std::string(name(s.algorithm)) + " is signed with its own hash and padding");
  if (s.digest && (s.algorithm == Algorithm::EdDSA || !scheme_fits(s.algorithm, s.scheme)))
    throw WireError(std::string(name(s.algorithm)) + " cannot sign a digest with padding " + std::string(name(s.scheme.padding)));
  if (s.digest && s.data.size() != hash_size(s.scheme.hash))
    throw WireError("a digest of " + std::to_string(s.data.size()) + " bytes for " + std::string(name(s.scheme.hash)));
  return s;
}

void write_error(Writer& w, const pkcs11::Error& e) {
  w.u8(static_cast<std::uint8_t>(e.kind)).bytes(capped(e.function, kMaxText)).u64(e.rv).bytes(capped(e.detail, kMaxText));
}

pkcs11::Error read_error(Reader& r) {
  pkcs11::Error e;
  const auto kind = r.u8();
  if (kind > static_cast<std::uint8_t>(pkcs11::ErrorKind::config)) throw WireError("an unknown error kind");
  e.kind = static_cast<pkcs11::ErrorKind>(kind);
  e.function = text(r);
  e.rv = r.u64();
  e.detail = text(r);
  return e;
}

std::string error_frame(std::uint32_t id, const pkcs11::Error& e) {
  Writer w(id, static_cast<std::uint8_t>(Type::error));
  write_error(w, e);
  return w.finish();
}

void write_key(Writer& w, const pkcs11::KeyObject& k) {
  const auto& c = k.custody;
  const std::uint8_t custody = (c.local ? 1 : 0) | (c.never_extractable ? 2 : 0) | (c.always_sensitive ? 4 : 0) |
                               (c.extractable ? 8 : 0) | (c.sensitive ? 16 : 0);
  w.bytes(k.id).bytes(k.label).u8(static_cast<std::uint8_t>(k.type)).u32(static_cast<std::uint32_t>(k.bits))
      .u64(k.private_key).u64(k.public_key).u8(custody);
}

pkcs11::KeyObject read_key(Reader& r) {
  pkcs11::KeyObject k;
  k.id = r.byte_vector(kMaxId);
  k.label = std::string(r.bytes(kMaxLabel));
  const auto type = r.u8();
  if (type > static_cast<std::uint8_t>(KeyType::OKP)) throw WireError("an unknown key type");
  k.type = static_cast<KeyType>(type);
  k.bits = r.u32();
  k.private_key = r.u64();
  k.public_key = r.u64();
  const auto custody = r.u8();
  if (custody > 31) throw WireError("unknown custody flags");
  k.custody = {(custody & 1) != 0, (custody & 2) != 0, (custody & 4) != 0, (custody & 8) != 0, (custody & 16) != 0};
  return k;
}

void write_keys(Writer& w, const std::vector<pkcs11::KeyObject>& keys) {
  w.u32(static_cast<std::uint32_t>(std::count_if(keys.begin(), keys.end(), [](const auto& k) { return fits_bounds(k.id, k.label); })));
  for (const auto& k : keys)
    if (fits_bounds(k.id, k.label)) write_key(w, k);
}

std::vector<pkcs11::KeyObject> read_keys(Reader& r) {
  std::vector<pkcs11::KeyObject> out(r.count(kMinKeyEntry));
  for (auto& k : out) k = read_key(r);
  r.end();
  return out;
}

void write_public_objects(Writer& w, const std::vector<pkcs11::PublicObject>& objects) {
  w.u32(static_cast<std::uint32_t>(
      std::count_if(objects.begin(), objects.end(), [](const auto& o) { return fits_bounds(o.id, o.label); })));
  for (const auto& o : objects)
    if (fits_bounds(o.id, o.label)) w.bytes(o.id).bytes(o.label);
}

std::vector<pkcs11::PublicObject> read_public_objects(Reader& r) {
  std::vector<pkcs11::PublicObject> out(r.count(8));
  for (auto& o : out) {
    o.id = r.byte_vector(kMaxId);
    o.label = std::string(r.bytes(kMaxLabel));
  }
  r.end();
  return out;
}

void write_public_key(Writer& w, const PublicKey& k) {
  w.u8(algorithm_code(k.algorithm)).bytes(k.point).bytes(k.modulus).bytes(k.exponent);
}

PublicKey read_public_key(Reader& r) {
  PublicKey k;
  k.algorithm = read_algorithm(r);
  k.point = r.byte_vector(kMaxKeyPart);
  k.modulus = r.byte_vector(kMaxKeyPart);
  k.exponent = r.byte_vector(kMaxKeyPart);
  return k;
}

void write_token(Writer& w, const pkcs11::TokenInfo& t) {
  w.u64(t.slot).bytes(capped(t.label, kMaxText)).bytes(capped(t.serial, kMaxText)).bytes(capped(t.model, kMaxText))
      .bytes(capped(t.manufacturer, kMaxText)).u64(t.max_sessions)
      .u8(t.login_required ? 1 : 0);
}

pkcs11::TokenInfo read_token(Reader& r) {
  pkcs11::TokenInfo t;
  t.slot = r.u64();
  t.label = text(r);
  t.serial = text(r);
  t.model = text(r);
  t.manufacturer = text(r);
  t.max_sessions = r.u64();
  t.login_required = r.flag();
  return t;
}

pkcs11::KeySpec read_key_spec(Reader& r) {
  pkcs11::KeySpec s;
  s.algorithm = read_algorithm(r);
  s.rsa_bits = r.u32();
  s.id = r.byte_vector(kMaxId);
  s.label = std::string(r.bytes(kMaxLabel));
  r.end();
  if (s.id.empty()) throw WireError("an empty key id");
  if (key_type(s.algorithm) == KeyType::RSA && s.rsa_bits != 2048 && s.rsa_bits != 3072 && s.rsa_bits != 4096)
    throw WireError("an RSA key of " + std::to_string(s.rsa_bits) + " bits (2048, 3072 or 4096)");
  return s;
}

void write_stats(Writer& w, const SignerStats& s) {
  w.u32(s.sessions_in_use).u32(s.sessions).u64(s.recoveries).u64(s.failed_recoveries).u8(s.token_lost ? 1 : 0);
  w.u32(static_cast<std::uint32_t>(s.calls.size()));
  for (const auto& c : s.calls) {
    w.bytes(c.function).u64(c.calls).u64(c.errors).u64(c.total_ns);
    for (auto b : c.buckets) w.u64(b);
  }
}

SignerStats read_stats(Reader& r) {
  SignerStats s;
  s.sessions_in_use = r.u32();
  s.sessions = r.u32();
  s.recoveries = r.u64();
  s.failed_recoveries = r.u64();
  s.token_lost = r.flag();
  const auto n = r.count(4 + 8 * 3 + 8 * pkcs11::CallStat::kBucketsUs.size() + 8);
  for (std::uint32_t i = 0; i < n; ++i) {
    pkcs11::CallStatSnapshot c{};
    c.function = std::string(r.bytes(64));
    // It becomes a label in /metrics: a Cryptoki function's name, nothing else.
    if (!c.function.starts_with("C_") ||
        !std::all_of(c.function.begin(), c.function.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; }))
      throw WireError("a call counter for something that is no Cryptoki function");
    c.calls = r.u64();
    c.errors = r.u64();
    c.total_ns = r.u64();
    for (auto& b : c.buckets) b = r.u64();
    s.calls.push_back(std::move(c));
  }
  r.end();
  return s;
}

}  // namespace hsmsignd::protocol
