// Errors of the PKCS#11 layer. A token error keeps the Cryptoki function and its CKR_ code so every log
// line and API answer can name both; nothing else from the token (and never a PIN) goes into a message.
#pragma once

#include <string>
#include <string_view>

#include "hsmsignd/result.h"

namespace hsmsignd::pkcs11 {

enum class ErrorKind {
  token,      // a C_* call returned something other than CKR_OK
  busy,       // no session could be leased in time
  refused,    // this layer refuses: custody attributes, wrong key type, bad input
  not_found,  // no such token or key
  config,     // the module or PIN file fails a safety check
};

struct Error {
  ErrorKind kind = ErrorKind::token;
  std::string function;  // the Cryptoki function, e.g. "C_Sign"; empty when kind != token
  unsigned long rv = 0;  // the CKR_ code when kind == token
  std::string detail;    // what this layer was doing, or why it refused

  static Error token(std::string function, unsigned long rv, std::string detail = {});
  static Error refused(std::string detail) { return {ErrorKind::refused, {}, 0, std::move(detail)}; }
  static Error not_found(std::string detail) { return {ErrorKind::not_found, {}, 0, std::move(detail)}; }
  static Error config(std::string detail) { return {ErrorKind::config, {}, 0, std::move(detail)}; }
  static Error busy(std::string detail) { return {ErrorKind::busy, {}, 0, std::move(detail)}; }
  // A signature from `function` that failed verification: a token fault, reported as CKR_DEVICE_ERROR.
  static Error faulty_signature(std::string function);

  // "C_Sign: CKR_DEVICE_ERROR (signing with key 0a1b…)" or the detail alone.
  std::string what() const;

  // The session is gone, no longer logged in, or stuck in an operation: open a new one and try again.
  bool session_lost() const;
  // The token has been removed or reset: the module has to be initialised again.
  bool token_gone() const;
  // The device failed (CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, ...): maybe once, maybe for good.
  bool device_fault() const;
  // Retrying could lock the token: CKR_PIN_INCORRECT, CKR_PIN_LOCKED and friends.
  bool pin_final() const;
  // The object handle no longer names the object (handles are not stable across every token event).
  bool handle_stale() const;
};

template <class T>
using Result = Expected<T, Error>;
using Status = Expected<void, Error>;

// "CKR_DEVICE_ERROR" for 0x30; "CKR_0x…" for codes this table does not know.
std::string rv_name(unsigned long rv);

}  // namespace hsmsignd::pkcs11
