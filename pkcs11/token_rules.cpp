#include "token_rules.h"

#include <algorithm>
#include <cstdio>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {
namespace {

struct Named {
  CK_MECHANISM_TYPE type;
  const char* name;
};

constexpr Named kNames[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
    {CKM_RSA_PKCS, "CKM_RSA_PKCS"},
    {CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS"},
    {CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS"},
    {CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS"},
    {CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
    {CKM_ECDSA, "CKM_ECDSA"},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
    {CKM_EDDSA, "CKM_EDDSA"},
};

class Offered {
 public:
  explicit Offered(const std::vector<MechanismInfo>& list) : list_(list) {}

  // Listed, with the flag the use needs: a module may list a mechanism for verification only.
  const MechanismInfo* find(CK_MECHANISM_TYPE type, CK_FLAGS flag) const {
    auto it = std::find_if(list_.begin(), list_.end(), [&](const MechanismInfo& m) { return m.type == type; });
    return it != list_.end() && (it->flags & flag) != 0 ? &*it : nullptr;
  }
  bool signs(CK_MECHANISM_TYPE type) const { return find(type, CKF_SIGN) != nullptr; }
  bool generates(CK_MECHANISM_TYPE type) const { return find(type, CKF_GENERATE_KEY_PAIR) != nullptr; }

 private:
  const std::vector<MechanismInfo>& list_;
};

// Records what a keyset lacks, so that one message names every missing mechanism of every keyset.
class Verdict {
 public:
  Verdict(Capabilities& out, const KeysetNeeds& keyset) : out_(out), keyset_(keyset) {}
  void missing(CK_MECHANISM_TYPE type, const std::string& why = {}) {
    out_.refusals.push_back("keyset \"" + keyset_.name + "\": the token has no " + mechanism_name(type) + why);
  }
  void fallback(CK_MECHANISM_TYPE wanted, const std::string& instead) {
    out_.fallbacks.push_back("keyset \"" + keyset_.name + "\": the token has no " + mechanism_name(wanted) + "; " +
                             std::string(name(keyset_.algorithm)) + " hashes in hsmsignd and signs with " + instead);
  }

 private:
  Capabilities& out_;
  const KeysetNeeds& keyset_;
};

void check_key_generation(const Offered& offered, const KeysetNeeds& k, Verdict& verdict) {
  switch (key_type(k.algorithm)) {
    case KeyType::EC:
      if (!offered.generates(CKM_EC_KEY_PAIR_GEN)) verdict.missing(CKM_EC_KEY_PAIR_GEN);
      return;
    case KeyType::OKP:
      if (!offered.generates(CKM_EC_EDWARDS_KEY_PAIR_GEN)) verdict.missing(CKM_EC_EDWARDS_KEY_PAIR_GEN);
      return;
    case KeyType::RSA: {
      const auto* gen = offered.find(CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR);
      if (gen == nullptr) return verdict.missing(CKM_RSA_PKCS_KEY_PAIR_GEN);
      // A module that reports no range (0..0) is taken at its word that any size will do.
      const bool ranged = gen->max_key_size != 0;
      if (ranged && (k.rsa_bits < gen->min_key_size || k.rsa_bits > gen->max_key_size))
        verdict.missing(CKM_RSA_PKCS_KEY_PAIR_GEN, " for " + std::to_string(k.rsa_bits) + "-bit keys (it makes " +
                                                       std::to_string(gen->min_key_size) + " to " +
                                                       std::to_string(gen->max_key_size) + ")");
      return;
    }
  }
}

// JWS message signatures. RS256 and PS256 prefer the token's own hash-and-sign mechanism (one call, and
// the TPM's raw CKM_RSA_PKCS wants a decrypt-capable key, which hsmsignd never makes); without it the
// digest is made here and the token pads and signs it: the same signature. p11-kit 0.24.1 forwards
// neither CKM_SHA256_RSA_PKCS_PSS nor CKM_ECDSA_SHA256, which is why ES256 and ES384 always hash here.
void check_message_signing(const Offered& offered, const KeysetNeeds& k, Verdict& verdict, SignPlan& plan) {
  switch (k.algorithm) {
    case Algorithm::ES256:
    case Algorithm::ES384:
      if (!offered.signs(CKM_ECDSA)) verdict.missing(CKM_ECDSA);
      return;
    case Algorithm::EdDSA:
      if (!offered.signs(CKM_EDDSA)) verdict.missing(CKM_EDDSA);
      return;
    case Algorithm::RS256:
      if (offered.signs(CKM_SHA256_RSA_PKCS)) return;
      if (!offered.signs(CKM_RSA_PKCS)) return verdict.missing(CKM_SHA256_RSA_PKCS, " (nor CKM_RSA_PKCS)");
      plan.rs256 = Hashing::here;
      return verdict.fallback(CKM_SHA256_RSA_PKCS, "CKM_RSA_PKCS over the DigestInfo");
    case Algorithm::PS256:
      if (offered.signs(CKM_SHA256_RSA_PKCS_PSS)) return;
      if (!offered.signs(CKM_RSA_PKCS_PSS)) return verdict.missing(CKM_SHA256_RSA_PKCS_PSS, " (nor CKM_RSA_PKCS_PSS)");
      plan.ps256 = Hashing::here;
      return verdict.fallback(CKM_SHA256_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS on the digest");
  }
}

// /v1/sign on a tls keyset hands over a digest of any SHA-2 hash, with either padding for RSA keys:
// only the digest mechanisms can sign those.
void check_digest_signing(const Offered& offered, const KeysetNeeds& k, Verdict& verdict) {
  if (key_type(k.algorithm) == KeyType::EC && !offered.signs(CKM_ECDSA)) verdict.missing(CKM_ECDSA);
  if (key_type(k.algorithm) != KeyType::RSA) return;
  for (CK_MECHANISM_TYPE m : {CK_MECHANISM_TYPE{CKM_RSA_PKCS}, CK_MECHANISM_TYPE{CKM_RSA_PKCS_PSS}})
    if (!offered.signs(m)) verdict.missing(m, " (a tls keyset signs digests)");
}

}  // namespace

std::string mechanism_name(unsigned long type) {
  for (const auto& n : kNames)
    if (n.type == type) return n.name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKM_0x%lx", type);
  return buf;
}

Capabilities check_capabilities(const std::vector<MechanismInfo>& mechanisms, const std::vector<KeysetNeeds>& keysets) {
  Capabilities out;
  const Offered offered(mechanisms);
  for (const auto& k : keysets) {
    Verdict verdict(out, k);
    check_key_generation(offered, k, verdict);
    if (k.digests) check_digest_signing(offered, k, verdict);
    else check_message_signing(offered, k, verdict, out.plan);
  }
  return out;
}

KeyUsage key_usage(Algorithm algorithm) {
  KeyUsage u;
  // The public half gets no CKA_VERIFY and no CKA_ENCRYPT: tpm2-pkcs11 maps them onto TPM object bits
  // that conflict with a sign-only private key and refuses the pair ("attr mismatch 0x10a"); SoftHSM and
  // NSS need neither (the public key is only exported, verification happens in OpenSSL). CKA_WRAP false on
  // RSA keeps the public half from wrapping other keys on tokens that default it to true.
  if (key_type(algorithm) == KeyType::RSA) u.public_half.push_back({CKA_WRAP, false});
  // Sign is the only use the private key has; it is born sensitive and can never be exported. No
  // CKA_DECRYPT: the TPM's raw CKM_RSA_PKCS wants a decrypt-capable key, which is why RS256 prefers
  // CKM_SHA256_RSA_PKCS wherever the token has it.
  u.private_half = {{CKA_SENSITIVE, true}, {CKA_EXTRACTABLE, false}, {CKA_SIGN, true}, {CKA_SIGN_RECOVER, false},
                    {CKA_DECRYPT, false},  {CKA_UNWRAP, false},      {CKA_DERIVE, false}};
  return u;
}

bool destroy_retry_after_reinitialisation(const Error& error) {
  // tpm2-pkcs11 leaves a key busy after a failed operation on it (C_DestroyObject then fails with
  // CKR_FUNCTION_FAILED or CKR_GENERAL_ERROR) until C_Finalize + C_Initialize; p11-kit remote answers
  // CKR_DEVICE_ERROR after a lost connection until the same. A refusal of ours, a missing object or an
  // object the token will not destroy (CKR_ACTION_PROHIBITED) does not change with a re-initialisation.
  return error.device_fault() || error.token_gone() || error.session_lost();
}

bool find_again_after_reinitialisation(const Error& error) {
  // tpm2-pkcs11 1.9 shows a process only the objects that existed at its C_Initialize: a key another signer
  // process (or host) generated since is not found here until C_Finalize + C_Initialize. On other tokens
  // the second look finds nothing more, and SessionPool paces re-initialisations, so a key that is really
  // gone costs a few of them, not one per request.
  return error.kind == ErrorKind::not_found;
}

}  // namespace hsmsignd::pkcs11
