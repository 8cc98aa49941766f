// Private to pkcs11/: the Cryptoki header and the one choke point every C_* call goes through.
#pragma once

#include <p11-kit/pkcs11.h>

#include <chrono>
#include <type_traits>

#include "call_stats.h"
#include "error.h"
#include "module.h"

static_assert(std::is_same_v<CK_ULONG, unsigned long>, "public headers use unsigned long for CK_ULONG");

namespace hsmsignd::pkcs11::detail {

inline CK_FUNCTION_LIST* functions(const Module& m) {
  return static_cast<CK_FUNCTION_LIST*>(m.raw_function_list());
}

template <class Fn, class... Args>
Status call(CallStat& stat, const char* name, Fn fn, Args... args) {
  if (fn == nullptr) return Error::token(name, CKR_FUNCTION_NOT_SUPPORTED);
  const auto start = std::chrono::steady_clock::now();
  const CK_RV rv = fn(args...);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
  stat.record(static_cast<std::uint64_t>(ns.count()), rv != CKR_OK);
  if (rv != CKR_OK) return Error::token(name, rv);
  return {};
}

}  // namespace hsmsignd::pkcs11::detail

// P11_CALL(module, C_Sign, session, ...) → Status naming the function and its CKR_ code on failure.
// The counters are looked up once per call site, not once per call.
#define P11_CALL(module, fn, ...)                                                                   \
  ::hsmsignd::pkcs11::detail::call(                                                                 \
      []() -> ::hsmsignd::pkcs11::CallStat& {                                                       \
        static auto& stat = ::hsmsignd::pkcs11::call_stat(#fn);                                     \
        return stat;                                                                                \
      }(),                                                                                          \
      #fn, ::hsmsignd::pkcs11::detail::functions(module)->fn, __VA_ARGS__)
