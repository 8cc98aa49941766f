// TokenOps in the front: each operation is a request to one signer process, waited for.
#pragma once

#include "token_ops.h"

namespace hsmsignd::signers {

class Signers;

class RemoteToken final : public pkcs11::TokenOps {
 public:
  explicit RemoteToken(Signers& signers) : signers_(signers) {}
  pkcs11::Result<std::vector<pkcs11::KeyObject>> list_keys() override;
  pkcs11::Result<std::vector<pkcs11::PublicObject>> list_public_keys() override;
  pkcs11::Result<pkcs11::KeyObject> generate_key_pair(const pkcs11::KeySpec& spec) override;
  pkcs11::Result<PublicKey> export_public_key(ByteView id, Algorithm algorithm) override;
  pkcs11::Status set_label(ByteView id, const std::string& label) override;
  pkcs11::Status destroy_key(ByteView id) override;

 private:
  Signers& signers_;
};

}  // namespace hsmsignd::signers
