#include "token.h"

#include <algorithm>
#include <vector>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {
namespace {

// Cryptoki pads text fields with blanks to a fixed width.
template <std::size_t N>
std::string padded(const unsigned char (&field)[N]) {
  std::string s(reinterpret_cast<const char*>(field), N);
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

unsigned long session_limit(CK_ULONG max) {
  return (max == CK_EFFECTIVELY_INFINITE || max == CK_UNAVAILABLE_INFORMATION) ? 0 : max;
}

}  // namespace

Result<TokenInfo> find_token(const Module& module, const TokenSelector& selector) {
  CK_ULONG count = 0;
  if (auto ok = P11_CALL(module, C_GetSlotList, CK_TRUE, nullptr, &count); !ok) return ok.error();
  std::vector<CK_SLOT_ID> slots(count);
  if (auto ok = P11_CALL(module, C_GetSlotList, CK_TRUE, slots.data(), &count); !ok) return ok.error();
  slots.resize(count);

  std::vector<TokenInfo> matches;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO ti{};
    if (auto ok = P11_CALL(module, C_GetTokenInfo, slot, &ti); !ok) continue;  // token left meanwhile
    if (!(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
    TokenInfo info{slot,
                   padded(ti.label),
                   padded(ti.serialNumber),
                   padded(ti.model),
                   padded(ti.manufacturerID),
                   session_limit(ti.ulMaxSessionCount),
                   (ti.flags & CKF_LOGIN_REQUIRED) != 0};
    const bool match = selector.serial.empty() ? info.label == selector.label : info.serial == selector.serial;
    if (match) matches.push_back(std::move(info));
  }
  const std::string what = selector.serial.empty() ? "label \"" + selector.label + "\""
                                                   : "serial \"" + selector.serial + "\"";
  if (matches.empty()) return Error::not_found("no initialised token with " + what);
  if (matches.size() > 1) return Error::refused("more than one token with " + what);
  return matches.front();
}

Result<std::vector<MechanismInfo>> mechanisms(const Module& module, SlotId slot) {
  CK_ULONG count = 0;
  if (auto ok = P11_CALL(module, C_GetMechanismList, slot, nullptr, &count); !ok) return ok.error();
  std::vector<CK_MECHANISM_TYPE> types(count);
  if (auto ok = P11_CALL(module, C_GetMechanismList, slot, types.data(), &count); !ok) return ok.error();
  types.resize(count);
  std::vector<MechanismInfo> out;
  out.reserve(types.size());
  for (CK_MECHANISM_TYPE type : types) {
    CK_MECHANISM_INFO info{};
    // A mechanism the module lists but cannot describe is one it cannot be trusted to perform.
    if (auto ok = P11_CALL(module, C_GetMechanismInfo, slot, type, &info); !ok) {
      if (ok.error().token_gone()) return ok.error();
      continue;
    }
    out.push_back({type, info.ulMinKeySize, info.ulMaxKeySize, info.flags});
  }
  return out;
}

Result<bool> supports(const Module& module, SlotId slot, Algorithm algorithm) {
  auto offered = mechanisms(module, slot);
  if (!offered) return offered.error();
  return check_capabilities(*offered, {{"", algorithm, 2048, false}}).refusals.empty();
}

}  // namespace hsmsignd::pkcs11
