#include "signers/remote_token.h"

#include "protocol/messages.h"
#include "signers/signers.h"

namespace hsmsignd::signers {
namespace {

using protocol::Type;

// Key generation is the slowest: an RSA-4096 key in a software token can take a minute.
constexpr std::chrono::milliseconds kTimeout{180'000};

protocol::Writer request(Type type) { return protocol::Writer(0, static_cast<std::uint8_t>(type)); }

// The answer read by `read`, or the signer's error; an answer that does not parse is the signer's fault.
template <class Read>
auto ask(Signers& signers, std::string frame, Read read) -> pkcs11::Result<decltype(read(std::declval<protocol::Reader&>()))> {
  auto answer = signers.call(std::move(frame), kTimeout);
  if (!answer) return answer.error();
  try {
    protocol::Reader r(*answer);
    return read(r);
  } catch (const protocol::WireError& e) {
    return pkcs11::Error::refused(std::string("a malformed answer from the signer: ") + e.what());
  }
}

pkcs11::Status ask_status(Signers& signers, std::string frame) {
  auto answer = signers.call(std::move(frame), kTimeout);
  if (!answer) return answer.error();
  if (!answer->empty()) return pkcs11::Error::refused("a malformed answer from the signer: unexpected bytes");
  return {};
}

}  // namespace

pkcs11::Result<std::vector<pkcs11::KeyObject>> RemoteToken::list_keys() {
  return ask(signers_, request(Type::list_keys).finish(), [](protocol::Reader& r) { return protocol::read_keys(r); });
}

pkcs11::Result<std::vector<pkcs11::PublicObject>> RemoteToken::list_public_keys() {
  return ask(signers_, request(Type::list_public_keys).finish(),
             [](protocol::Reader& r) { return protocol::read_public_objects(r); });
}

pkcs11::Result<pkcs11::KeyObject> RemoteToken::generate_key_pair(const pkcs11::KeySpec& spec) {
  auto frame = request(Type::generate).u8(protocol::algorithm_code(spec.algorithm)).u32(spec.rsa_bits)
                   .bytes(spec.id).bytes(spec.label).finish();
  return ask(signers_, std::move(frame), [](protocol::Reader& r) {
    auto key = protocol::read_key(r);
    r.end();
    return key;
  });
}

pkcs11::Result<PublicKey> RemoteToken::export_public_key(ByteView id, Algorithm algorithm) {
  auto frame = request(Type::export_public_key).bytes(id).u8(protocol::algorithm_code(algorithm)).finish();
  return ask(signers_, std::move(frame), [](protocol::Reader& r) {
    auto key = protocol::read_public_key(r);
    r.end();
    return key;
  });
}

pkcs11::Status RemoteToken::set_label(ByteView id, const std::string& label) {
  return ask_status(signers_, request(Type::set_label).bytes(id).bytes(label).finish());
}

pkcs11::Status RemoteToken::destroy_key(ByteView id) {
  return ask_status(signers_, request(Type::destroy).bytes(id).finish());
}

}  // namespace hsmsignd::signers
