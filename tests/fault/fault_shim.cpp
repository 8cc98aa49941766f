// A PKCS#11 module that forwards every call to a real one (HSMSIGND_FAULT_MODULE) and injects the faults
// its control file (HSMSIGND_FAULT_CONTROL) asks for, so that tests can make a token fail on cue.
// Test helper: only pkcs11/ may include the Cryptoki header in the product.
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "control.h"
#include "functions.h"

namespace hsmsignd::fault {
namespace {

const char* env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// No exception may cross the C boundary.
template <class F>
CK_RV guarded(F&& f) noexcept {
  try {
    return f();
  } catch (...) {
    return CKR_GENERAL_ERROR;
  }
}

enum class Injected { fail, removed, latency, corrupt, hang, count };

// What was injected so far, rewritten to HSMSIGND_FAULT_STATS (if set) after every injection.
class Stats {
 public:
  void add(Injected what) {
    ++counts_[static_cast<std::size_t>(what)];
    if (path_.empty()) return;
    static constexpr const char* kNames[] = {"fail", "removed", "latency", "corrupt", "hang"};
    std::lock_guard lock(write_mutex_);
    const std::string tmp = path_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return;
    for (std::size_t i = 0; i < counts_.size(); ++i) std::fprintf(f, "%s injected %lu\n", kNames[i], counts_[i].load());
    if (std::fclose(f) == 0) std::rename(tmp.c_str(), path_.c_str());
  }

 private:
  std::array<std::atomic<unsigned long>, static_cast<std::size_t>(Injected::count)> counts_{};
  std::mutex write_mutex_;
  const std::string path_ = env_or("HSMSIGND_FAULT_STATS", "");
};

// The parsed control file and the sticky removal. The mutex is never held while the real module works
// or while a call is delayed: the daemon's other threads must keep going.
class Faults {
 public:
  // Applies the control file before `fn` reaches the module; a value is the call's result instead.
  std::optional<CK_RV> before(Fn fn) {
    std::optional<CK_RV> result;
    Injected what = Injected::fail;
    bool hang = false;
    std::chrono::milliseconds delay{0};
    {
      std::lock_guard lock(mutex_);
      refresh();
      const Kind kind = info(fn).kind;
      if (removed_ && (kind == Kind::token || kind == Kind::session)) {
        result = kind == Kind::token ? CKR_TOKEN_NOT_PRESENT : CKR_DEVICE_REMOVED;
        what = Injected::removed;
      }
      for (Rule& rule : control_.rules) {
        if (result || !rule.matches(fn)) continue;
        if (rule.action == Action::fail && rule.remaining != 0UL) {
          if (rule.remaining) --*rule.remaining;
          result = rule.rv;
        }
        if (rule.action == Action::hang) hang = true;
        if (rule.action == Action::latency) delay += rule.delay;
      }
    }
    if (result) {
      stats_.add(what);
      return result;
    }
    if (hang) {
      stats_.add(Injected::hang);
      while (hanging(fn)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return before(fn);  // the version of the file that ended the hang may ask for something else
    }
    if (delay.count() > 0) {
      stats_.add(Injected::latency);
      std::this_thread::sleep_for(delay);
    }
    return std::nullopt;
  }

  // Whether to spoil the signature `fn` has just returned; uses up one of the directive's COUNT.
  bool take_corrupt(Fn fn) {
    {
      std::lock_guard lock(mutex_);
      auto rule = std::find_if(control_.rules.begin(), control_.rules.end(), [&](const Rule& r) {
        return r.action == Action::corrupt && r.matches(fn) && r.remaining != 0UL;
      });
      if (rule == control_.rules.end()) return false;
      if (rule->remaining) --*rule->remaining;
    }
    stats_.add(Injected::corrupt);
    return true;
  }

  bool removed() {
    std::lock_guard lock(mutex_);
    return removed_;
  }
  void note_removed() { stats_.add(Injected::removed); }

  // A library that lost its device works again only once re-initialised with the device back.
  void initialized() {
    std::lock_guard lock(mutex_);
    refresh();
    if (!control_.removed) removed_ = false;
  }

 private:
  bool hanging(Fn fn) {
    std::lock_guard lock(mutex_);
    refresh();
    return std::any_of(control_.rules.begin(), control_.rules.end(),
                       [&](const Rule& r) { return r.action == Action::hang && r.matches(fn); });
  }

  void refresh() {  // with mutex_ held
    std::vector<std::string> complaints;
    if (!file_.refresh(control_, complaints)) return;
    if (control_.removed) removed_ = true;
    for (const auto& complaint : complaints)
      std::fprintf(stderr, "hsmsignd-fault-shim: %s: %s\n", path_.c_str(), complaint.c_str());
  }

  const std::string path_ = env_or("HSMSIGND_FAULT_CONTROL", "");
  std::mutex mutex_;
  ControlFile file_{path_};
  Control control_;
  bool removed_ = false;  // sticky: set when a version of the file says `removed`, cleared by initialized()
  Stats stats_;
};

CK_FUNCTION_LIST* load_real_module(std::string& why) {
  const char* path = env_or("HSMSIGND_FAULT_MODULE", "/usr/lib/softhsm/libsofthsm2.so");
  // RTLD_NODELETE as in pkcs11/module.cpp: SoftHSM's exit handlers need its code still mapped.
  void* library = ::dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library == nullptr) {
    const char* error = ::dlerror();
    why = std::string("cannot load ") + path + ": " + (error ? error : "?");
    return nullptr;
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  CK_FUNCTION_LIST* list = nullptr;
  if (get_list == nullptr || get_list(&list) != CKR_OK || list == nullptr) {
    why = std::string("no function list from ") + path;
    return nullptr;
  }
  return list;
}

struct Shim {
  Shim();
  std::string load_error;
  CK_FUNCTION_LIST* real = load_real_module(load_error);
  Faults faults;
  CK_FUNCTION_LIST list{};
};

Shim& shim() {
  static Shim instance;
  return instance;
}

template <auto member, class... Args>
CK_RV forward(Args... args) {
  auto fn = shim().real->*member;
  return fn == nullptr ? CKR_FUNCTION_NOT_SUPPORTED : fn(args...);
}

// Every function without a special case: the faults, then the real module.
template <class FnPtr>
struct Forward;
template <class... Args>
struct Forward<CK_RV (*)(Args...)> {
  template <Fn fn, auto member>
  static CK_RV call(Args... args) {
    return guarded([&]() -> CK_RV {
      if (auto rv = shim().faults.before(fn)) return *rv;
      return forward<member>(args...);
    });
  }
};

// C_Finalize is forwarded as it is, and C_Initialize really initialises the module again: SoftHSM 2.6.1
// survives C_Finalize then C_Initialize in one process (tried: after logging in again the same objects are
// found and sign), so re-initialising through the shim is the real thing, not an imitation.
CK_RV initialize(CK_VOID_PTR args) {
  return guarded([&]() -> CK_RV {
    if (auto rv = shim().faults.before(Fn::C_Initialize)) return *rv;
    const CK_RV rv = forward<&CK_FUNCTION_LIST::C_Initialize>(args);
    if (rv == CKR_OK) shim().faults.initialized();
    return rv;
  });
}

CK_RV get_slot_list(CK_BBOOL token_present, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count) {
  return guarded([&]() -> CK_RV {
    if (auto rv = shim().faults.before(Fn::C_GetSlotList)) return *rv;
    if (!token_present || !shim().faults.removed())
      return forward<&CK_FUNCTION_LIST::C_GetSlotList>(token_present, slots, count);
    // Only slots with a token were asked for, and the token is out: none. The real call still runs so
    // that an uninitialised library answers as it would.
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    CK_ULONG real_count = 0;
    const CK_RV rv = forward<&CK_FUNCTION_LIST::C_GetSlotList>(token_present, nullptr, &real_count);
    if (rv != CKR_OK) return rv;
    *count = 0;
    shim().faults.note_removed();
    return CKR_OK;
  });
}

CK_RV get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  return guarded([&]() -> CK_RV {
    if (auto rv = shim().faults.before(Fn::C_GetSlotInfo)) return *rv;
    const CK_RV rv = forward<&CK_FUNCTION_LIST::C_GetSlotInfo>(slot, info);
    if (rv == CKR_OK && info != nullptr && shim().faults.removed()) {
      info->flags &= ~CKF_TOKEN_PRESENT;
      shim().faults.note_removed();
    }
    return rv;
  });
}

void maybe_corrupt(Fn fn, CK_RV rv, CK_BYTE_PTR signature, CK_ULONG_PTR length) {
  if (rv == CKR_OK && signature != nullptr && length != nullptr && *length > 0 && shim().faults.take_corrupt(fn))
    signature[*length / 2] ^= 0x01;
}

CK_RV sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
           CK_ULONG_PTR length) {
  return guarded([&]() -> CK_RV {
    if (auto rv = shim().faults.before(Fn::C_Sign)) return *rv;
    const CK_RV rv = forward<&CK_FUNCTION_LIST::C_Sign>(session, data, data_len, signature, length);
    maybe_corrupt(Fn::C_Sign, rv, signature, length);
    return rv;
  });
}

CK_RV sign_final(CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG_PTR length) {
  return guarded([&]() -> CK_RV {
    if (auto rv = shim().faults.before(Fn::C_SignFinal)) return *rv;
    const CK_RV rv = forward<&CK_FUNCTION_LIST::C_SignFinal>(session, signature, length);
    maybe_corrupt(Fn::C_SignFinal, rv, signature, length);
    return rv;
  });
}

Shim::Shim() {
  list.version = {2, 40};
#define HSMSIGND_FAULT_FORWARD(name, kind) \
  list.name = &Forward<CK_##name>::call<Fn::name, &CK_FUNCTION_LIST::name>;
  HSMSIGND_FAULT_FUNCTIONS(HSMSIGND_FAULT_FORWARD)
#undef HSMSIGND_FAULT_FORWARD
  list.C_GetFunctionList = &::C_GetFunctionList;
  list.C_Initialize = &initialize;
  list.C_GetSlotList = &get_slot_list;
  list.C_GetSlotInfo = &get_slot_info;
  list.C_Sign = &sign;
  list.C_SignFinal = &sign_final;
}

}  // namespace
}  // namespace hsmsignd::fault

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  using namespace hsmsignd::fault;
  return guarded([&]() -> CK_RV {
    if (out == nullptr) return CKR_ARGUMENTS_BAD;
    Shim& s = shim();
    if (s.real == nullptr) {
      std::fprintf(stderr, "hsmsignd-fault-shim: %s\n", s.load_error.c_str());
      return CKR_GENERAL_ERROR;
    }
    *out = &s.list;
    return CKR_OK;
  });
}
