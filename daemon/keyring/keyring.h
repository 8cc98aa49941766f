// Which keys each keyset has on the token, in which state, and which one signs. The token is the truth:
// the keyring is rebuilt from it (labels carry the schedule), never from a file that could disagree.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "keyring/lifecycle.h"
#include "session_pool.h"
#include "signing/checked_signer.h"

namespace hsmsignd::keyring {

struct Key {
  std::string kid;  // RFC 7638 thumbprint of the public key
  std::string keyset;
  Algorithm algorithm = Algorithm::ES256;
  Bytes id;  // CKA_ID
  std::string label;
  TimePoint created;
  Schedule schedule;
  PublicKey public_key;
  std::shared_ptr<signing::CheckedSigner> signer;
};

// An immutable picture of the keyring; readers hold it as long as they like while the keyring moves on.
struct View {
  std::vector<Key> keys;  // pending, active and retiring keys of every configured keyset
  std::map<std::string, std::size_t, std::less<>> active;  // keyset -> index into keys
  std::string jwks;  // the JWK Set document of `keys`
  std::string etag;

  const Key* active_key(std::string_view keyset) const;
};

class Keyring {
 public:
  Keyring(pkcs11::SessionPool& pool, const config::Config& config);

  // Reads the token; a keyset without an active key gets a new one, generated in the token and active
  // at once. A restart finds the same keys again: nothing is generated just because the daemon started.
  pkcs11::Status load(TimePoint now);

  std::shared_ptr<const View> view() const { return view_.load(); }

 private:
  pkcs11::Result<std::vector<Key>> read_keyset(pkcs11::SessionRef session, const config::KeysetConfig& keyset,
                                               const std::vector<pkcs11::KeyObject>& objects, TimePoint now);
  pkcs11::Status generate(pkcs11::SessionRef session, const config::KeysetConfig& keyset, TimePoint activates,
                          TimePoint now);
  pkcs11::Result<Key> open_key(pkcs11::SessionRef session, const config::KeysetConfig& keyset,
                               const pkcs11::KeyObject& object, const KeyLabel& label);

  pkcs11::SessionPool& pool_;
  const config::Config& config_;
  std::atomic<std::shared_ptr<const View>> view_;
  // Signers are kept across reloads so that a key's checked signer (and its EVP key) is built once.
  std::map<Bytes, std::shared_ptr<signing::CheckedSigner>> signers_;
};

}  // namespace hsmsignd::keyring
