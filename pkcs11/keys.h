// Key pairs inside the token: generation with custody attributes, lookup by CKA_ID, the attributes an
// auditor asks about, public-key export and destruction. The private half never leaves the token.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hsmsignd/algorithm.h"
#include "hsmsignd/bytes.h"
#include "hsmsignd/public_key.h"
#include "session_pool.h"

namespace hsmsignd::pkcs11 {

using ObjectHandle = unsigned long;

struct KeySpec {
  Algorithm algorithm = Algorithm::ES256;
  unsigned rsa_bits = 2048;  // RS256 and PS256 only: 2048, 3072 or 4096
  Bytes id;                  // CKA_ID of both halves; chosen by the caller, must be unique
  std::string label;         // CKA_LABEL of both halves
};

// The attributes that show a key was born in the token and can never leave it.
struct Custody {
  bool local = false;              // CKA_LOCAL: generated inside the token
  bool never_extractable = false;  // CKA_NEVER_EXTRACTABLE
  bool always_sensitive = false;   // CKA_ALWAYS_SENSITIVE
  bool extractable = true;         // CKA_EXTRACTABLE
  bool sensitive = false;          // CKA_SENSITIVE

  // Never extractable, always sensitive, sensitive and not extractable: the key cannot leave the token.
  bool confined() const { return never_extractable && always_sensitive && !extractable && sensitive; }
};

// What a signing key must show. CKA_LOCAL is required unless the operator turned it off ([token]
// require_local = false) for a token that never sets it on the keys it generates (NSS softoken): the
// evidence of birth in the token is then the daemon's own keygen audit line, not the token's word.
struct CustodyPolicy {
  bool require_local = true;

  bool trustworthy(const Custody& c) const { return (c.local || !require_local) && c.confined(); }
};

// A private key on the token and the public key object that shares its CKA_ID.
struct KeyObject {
  Bytes id;
  std::string label;
  KeyType type = KeyType::EC;
  std::size_t bits = 0;  // RSA modulus bits; EC curve bits (256, 384); 255 for Ed25519
  ObjectHandle private_key = 0;
  ObjectHandle public_key = 0;  // 0 when the token holds no public object with that CKA_ID
  Custody custody;
};

// Whether a key of this type and size can sign with the algorithm.
bool fits(const KeyObject& key, Algorithm algorithm);

Result<KeyObject> generate_key_pair(SessionRef session, const KeySpec& spec);
// Every private key on the token (whoever made it: the custody report lists them all).
Result<std::vector<KeyObject>> list_keys(SessionRef session);
Result<std::optional<KeyObject>> find_key(SessionRef session, ByteView id);
Result<PublicKey> export_public_key(SessionRef session, const KeyObject& key, Algorithm algorithm);
// The CKA_ID and CKA_LABEL of every public key object, to find halves whose private key is gone.
struct PublicObject {
  Bytes id;
  std::string label;
};
Result<std::vector<PublicObject>> list_public_keys(SessionRef session);

// Sets CKA_LABEL on both halves of the key pair with this CKA_ID.
Status set_label(SessionRef session, ByteView id, const std::string& label);

// The same, only on the objects whose label is `from` now (not found when there are none).
Status relabel(SessionRef session, ByteView id, const std::string& from, const std::string& to);

// Destroys every object with this CKA_ID; nothing left to destroy is success (the call is idempotent).
Status destroy_key(SessionRef session, ByteView id);

// One attribute's raw value, for checks and tests (the token refuses sensitive ones).
Result<Bytes> read_attribute(SessionRef session, ObjectHandle object, unsigned long attribute);

}  // namespace hsmsignd::pkcs11
