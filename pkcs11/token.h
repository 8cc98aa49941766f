// Finding a token by label or serial, and what it says about itself.
#pragma once

#include <string>

#include "hsmsignd/algorithm.h"
#include <vector>

#include "module.h"
#include "token_rules.h"

namespace hsmsignd::pkcs11 {

using SlotId = unsigned long;

struct TokenSelector {
  std::string label;   // exactly one of label and serial is set
  std::string serial;
};

struct TokenInfo {
  SlotId slot = 0;
  std::string label, serial, model, manufacturer;
  unsigned long max_sessions = 0;  // 0: no limit the token reports
  bool login_required = true;
};

// Exactly one token must match: two tokens with one label would make the choice an accident.
Result<TokenInfo> find_token(const Module& module, const TokenSelector& selector);

// C_GetMechanismList with C_GetMechanismInfo of each: what token_rules' check_capabilities reads.
Result<std::vector<MechanismInfo>> mechanisms(const Module& module, SlotId slot);

// Whether the token offers the key generation and signing mechanisms the algorithm needs (a jwt keyset
// with 2048-bit RSA keys), by check_capabilities' rules.
Result<bool> supports(const Module& module, SlotId slot, Algorithm algorithm);

}  // namespace hsmsignd::pkcs11
