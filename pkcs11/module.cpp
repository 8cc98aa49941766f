#include "module.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {

Status check_module_path(const std::filesystem::path& path) {
  if (!path.is_absolute()) return Error::config("PKCS#11 module path must be absolute: " + path.string());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Error::config("PKCS#11 module " + path.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Error::config("PKCS#11 module is not a regular file: " + path.string());
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return Error::config("PKCS#11 module is writable by group or others: " + path.string());
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return Error::config("PKCS#11 module is owned by another user: " + path.string());
  return {};
}

namespace {

// The daemon signs from several threads; the module must lock with the OS's primitives. pReserved is
// what the operator configured, or NULL (the standard's value, and the only one tpm2-pkcs11 accepts).
CK_RV initialize(CK_FUNCTION_LIST* list, const std::string& init_args) {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  args.pReserved = init_args.empty() ? nullptr : const_cast<char*>(init_args.c_str());
  return list->C_Initialize(&args);
}

}  // namespace

Result<std::shared_ptr<Module>> Module::load(const std::filesystem::path& path, std::string init_args) {
  if (auto ok = check_module_path(path); !ok) return ok.error();

  // RTLD_NODELETE: modules (SoftHSM among them) register OpenSSL and atexit handlers that crash when
  // their code is unmapped before the process ends, so the library is never unloaded.
  void* library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library == nullptr) {
    const char* why = ::dlerror();
    return Error::config("cannot load PKCS#11 module " + path.string() + ": " + (why ? why : "?"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  if (get_list == nullptr) {
    ::dlclose(library);
    return Error::config("not a PKCS#11 module (no C_GetFunctionList): " + path.string());
  }
  CK_FUNCTION_LIST* list = nullptr;
  if (const CK_RV rv = get_list(&list); rv != CKR_OK || list == nullptr) {
    ::dlclose(library);
    return Error::token("C_GetFunctionList", rv == CKR_OK ? CKR_GENERAL_ERROR : rv, path.string());
  }
  if (list->C_Initialize == nullptr) {
    ::dlclose(library);
    return Error::config("PKCS#11 module lacks C_Initialize: " + path.string());
  }

  if (const CK_RV rv = initialize(list, init_args); rv != CKR_OK) {
    ::dlclose(library);
    return Error::token("C_Initialize", rv, path.string());
  }
  return std::make_shared<Module>(Key{}, path, std::move(init_args), library, list);
}

Status Module::reinitialize() const {
  (void)P11_CALL(*this, C_Finalize, nullptr);  // CKR_CRYPTOKI_NOT_INITIALIZED after a failed attempt: fine
  auto* list = static_cast<CK_FUNCTION_LIST*>(functions_);
  if (const CK_RV rv = initialize(list, init_args_); rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
    return Error::token("C_Initialize", rv, path_.string());
  return {};
}

Module::~Module() {
  (void)P11_CALL(*this, C_Finalize, nullptr);
  ::dlclose(library_);
}

}  // namespace hsmsignd::pkcs11
