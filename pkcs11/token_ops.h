// The key operations of one token, whoever performs them: LocalToken calls the module in this process
// (the signer processes, the tests), the front's RemoteToken asks a signer process. The keyring, the
// audit key and the custody report see only this.
#pragma once

#include <string>
#include <vector>

#include "keys.h"

namespace hsmsignd::pkcs11 {

class TokenOps {
 public:
  virtual ~TokenOps() = default;
  virtual Result<std::vector<KeyObject>> list_keys() = 0;
  virtual Result<std::vector<PublicObject>> list_public_keys() = 0;
  virtual Result<KeyObject> generate_key_pair(const KeySpec& spec) = 0;
  // The public half of the key pair with this CKA_ID.
  virtual Result<PublicKey> export_public_key(ByteView id, Algorithm algorithm) = 0;
  // A signer process carries it out only as a retirement: `label` is the key's label with "/retired".
  virtual Status set_label(ByteView id, const std::string& label) = 0;
  virtual Status destroy_key(ByteView id) = 0;
};

// TokenOps on a session pool of this process.
class LocalToken final : public TokenOps {
 public:
  explicit LocalToken(SessionPool& pool) : pool_(pool) {}
  Result<std::vector<KeyObject>> list_keys() override;
  Result<std::vector<PublicObject>> list_public_keys() override;
  Result<KeyObject> generate_key_pair(const KeySpec& spec) override;
  Result<PublicKey> export_public_key(ByteView id, Algorithm algorithm) override;
  Status set_label(ByteView id, const std::string& label) override;
  Status destroy_key(ByteView id) override;

 private:
  SessionPool& pool_;
};

}  // namespace hsmsignd::pkcs11
