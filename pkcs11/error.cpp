#include "error.h"

#include <array>
#include <cstdio>
#include <utility>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {
namespace {

struct RvName {
  CK_RV rv;
  const char* name;
};

#define RV(x) RvName{x, #x}
constexpr std::array kRvNames{
    RV(CKR_OK), RV(CKR_CANCEL), RV(CKR_HOST_MEMORY), RV(CKR_SLOT_ID_INVALID), RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED), RV(CKR_ARGUMENTS_BAD), RV(CKR_NO_EVENT), RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK), RV(CKR_ATTRIBUTE_READ_ONLY), RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID), RV(CKR_ATTRIBUTE_VALUE_INVALID), RV(CKR_DATA_INVALID),
    RV(CKR_DATA_LEN_RANGE), RV(CKR_DEVICE_ERROR), RV(CKR_DEVICE_MEMORY), RV(CKR_DEVICE_REMOVED),
    RV(CKR_ENCRYPTED_DATA_INVALID), RV(CKR_ENCRYPTED_DATA_LEN_RANGE), RV(CKR_FUNCTION_CANCELED),
    RV(CKR_FUNCTION_NOT_PARALLEL), RV(CKR_FUNCTION_NOT_SUPPORTED), RV(CKR_KEY_HANDLE_INVALID),
    RV(CKR_KEY_SIZE_RANGE), RV(CKR_KEY_TYPE_INCONSISTENT), RV(CKR_KEY_NOT_NEEDED), RV(CKR_KEY_CHANGED),
    RV(CKR_KEY_NEEDED), RV(CKR_KEY_INDIGESTIBLE), RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    RV(CKR_KEY_NOT_WRAPPABLE), RV(CKR_KEY_UNEXTRACTABLE), RV(CKR_MECHANISM_INVALID),
    RV(CKR_MECHANISM_PARAM_INVALID), RV(CKR_OBJECT_HANDLE_INVALID), RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED), RV(CKR_PIN_INCORRECT), RV(CKR_PIN_INVALID), RV(CKR_PIN_LEN_RANGE),
    RV(CKR_PIN_EXPIRED), RV(CKR_PIN_LOCKED), RV(CKR_SESSION_CLOSED), RV(CKR_SESSION_COUNT),
    RV(CKR_SESSION_HANDLE_INVALID), RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED), RV(CKR_SESSION_READ_ONLY),
    RV(CKR_SESSION_EXISTS), RV(CKR_SESSION_READ_ONLY_EXISTS), RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    RV(CKR_SIGNATURE_INVALID), RV(CKR_SIGNATURE_LEN_RANGE), RV(CKR_TEMPLATE_INCOMPLETE),
    RV(CKR_TEMPLATE_INCONSISTENT), RV(CKR_TOKEN_NOT_PRESENT), RV(CKR_TOKEN_NOT_RECOGNIZED),
    RV(CKR_TOKEN_WRITE_PROTECTED), RV(CKR_USER_ALREADY_LOGGED_IN), RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_USER_PIN_NOT_INITIALIZED), RV(CKR_USER_TYPE_INVALID), RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES), RV(CKR_DOMAIN_PARAMS_INVALID), RV(CKR_CURVE_NOT_SUPPORTED),
    RV(CKR_BUFFER_TOO_SMALL), RV(CKR_SAVED_STATE_INVALID), RV(CKR_INFORMATION_SENSITIVE),
    RV(CKR_STATE_UNSAVEABLE), RV(CKR_CRYPTOKI_NOT_INITIALIZED), RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RV(CKR_MUTEX_BAD), RV(CKR_MUTEX_NOT_LOCKED), RV(CKR_FUNCTION_REJECTED),
};
#undef RV

}  // namespace

Error Error::token(std::string function, unsigned long rv, std::string detail) {
  return {ErrorKind::token, std::move(function), rv, std::move(detail)};
}

Error Error::faulty_signature(std::string function) {
  return token(std::move(function), CKR_DEVICE_ERROR, "the signature failed verification");
}

std::string rv_name(unsigned long rv) {
  for (const auto& [code, name] : kRvNames)
    if (code == rv) return name;
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "CKR_0x%lx", rv);
  return buf.data();
}

std::string Error::what() const {
  if (kind != ErrorKind::token) return detail;
  std::string s = function + ": " + rv_name(rv);
  if (!detail.empty()) s += " (" + detail + ")";
  return s;
}

bool Error::session_lost() const {
  return kind == ErrorKind::token &&
         (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_USER_NOT_LOGGED_IN ||
          rv == CKR_OPERATION_ACTIVE);
}

bool Error::token_gone() const {
  return kind == ErrorKind::token &&
         (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
          rv == CKR_SLOT_ID_INVALID);
}

bool Error::device_fault() const {
  return kind == ErrorKind::token && (rv == CKR_DEVICE_ERROR || rv == CKR_GENERAL_ERROR ||
                                      rv == CKR_FUNCTION_FAILED || rv == CKR_DEVICE_MEMORY);
}

bool Error::pin_final() const {
  return kind == ErrorKind::token && (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
                                      rv == CKR_PIN_EXPIRED || rv == CKR_PIN_INVALID ||
                                      rv == CKR_PIN_LEN_RANGE || rv == CKR_USER_PIN_NOT_INITIALIZED);
}

bool Error::handle_stale() const {
  return kind == ErrorKind::token && (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID);
}

}  // namespace hsmsignd::pkcs11
