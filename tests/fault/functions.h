// The Cryptoki 2.40 functions the fault shim stands in for, as an X-macro, so that the forwarding
// functions, the names the control file accepts and the per-function behaviour come from one table.
// Test helper: only pkcs11/ may include the Cryptoki header in the product.
#pragma once

#include <p11-kit/pkcs11.h>

#include <array>
#include <optional>
#include <string_view>

namespace hsmsignd::fault {

// What a function does while the token is pulled out (the `removed` directive).
enum class Kind {
  lifecycle,  // C_Initialize, C_Finalize, C_GetInfo: unaffected, and not matched by `*`
  slots,      // forwarded; C_GetSlotList and C_GetSlotInfo no longer show the token
  token,      // takes a slot whose token is needed: CKR_TOKEN_NOT_PRESENT
  session,    // takes a session handle: CKR_DEVICE_REMOVED
};

// Every member of CK_FUNCTION_LIST but C_GetFunctionList, which the shim answers itself.
#define HSMSIGND_FAULT_FUNCTIONS(X)                                                                   \
  X(C_Initialize, lifecycle) X(C_Finalize, lifecycle) X(C_GetInfo, lifecycle)                         \
  X(C_GetSlotList, slots) X(C_GetSlotInfo, slots) X(C_WaitForSlotEvent, slots)                        \
  X(C_GetTokenInfo, token) X(C_GetMechanismList, token) X(C_GetMechanismInfo, token)                  \
  X(C_InitToken, token) X(C_OpenSession, token) X(C_CloseAllSessions, token)                          \
  X(C_InitPIN, session) X(C_SetPIN, session) X(C_CloseSession, session) X(C_GetSessionInfo, session)  \
  X(C_GetOperationState, session) X(C_SetOperationState, session) X(C_Login, session)                 \
  X(C_Logout, session) X(C_CreateObject, session) X(C_CopyObject, session)                            \
  X(C_DestroyObject, session) X(C_GetObjectSize, session) X(C_GetAttributeValue, session)             \
  X(C_SetAttributeValue, session) X(C_FindObjectsInit, session) X(C_FindObjects, session)             \
  X(C_FindObjectsFinal, session) X(C_EncryptInit, session) X(C_Encrypt, session)                      \
  X(C_EncryptUpdate, session) X(C_EncryptFinal, session) X(C_DecryptInit, session)                    \
  X(C_Decrypt, session) X(C_DecryptUpdate, session) X(C_DecryptFinal, session)                        \
  X(C_DigestInit, session) X(C_Digest, session) X(C_DigestUpdate, session) X(C_DigestKey, session)    \
  X(C_DigestFinal, session) X(C_SignInit, session) X(C_Sign, session) X(C_SignUpdate, session)        \
  X(C_SignFinal, session) X(C_SignRecoverInit, session) X(C_SignRecover, session)                     \
  X(C_VerifyInit, session) X(C_Verify, session) X(C_VerifyUpdate, session) X(C_VerifyFinal, session)  \
  X(C_VerifyRecoverInit, session) X(C_VerifyRecover, session) X(C_DigestEncryptUpdate, session)       \
  X(C_DecryptDigestUpdate, session) X(C_SignEncryptUpdate, session) X(C_DecryptVerifyUpdate, session) \
  X(C_GenerateKey, session) X(C_GenerateKeyPair, session) X(C_WrapKey, session)                       \
  X(C_UnwrapKey, session) X(C_DeriveKey, session) X(C_SeedRandom, session)                            \
  X(C_GenerateRandom, session) X(C_GetFunctionStatus, session) X(C_CancelFunction, session)

enum class Fn {
#define HSMSIGND_FAULT_ENUM(name, kind) name,
  HSMSIGND_FAULT_FUNCTIONS(HSMSIGND_FAULT_ENUM)
#undef HSMSIGND_FAULT_ENUM
};

struct FnInfo {
  std::string_view name;
  Kind kind;
};

inline constexpr std::array kFunctions = {
#define HSMSIGND_FAULT_INFO(name, kind) FnInfo{#name, Kind::kind},
    HSMSIGND_FAULT_FUNCTIONS(HSMSIGND_FAULT_INFO)
#undef HSMSIGND_FAULT_INFO
};
static_assert(kFunctions.size() == 67, "CK_FUNCTION_LIST 2.40 has 68 members, C_GetFunctionList among them");

inline const FnInfo& info(Fn fn) { return kFunctions[static_cast<std::size_t>(fn)]; }

inline std::optional<Fn> function_named(std::string_view name) {
  for (std::size_t i = 0; i < kFunctions.size(); ++i)
    if (kFunctions[i].name == name) return static_cast<Fn>(i);
  return std::nullopt;
}

}  // namespace hsmsignd::fault
