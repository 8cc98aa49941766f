// A loaded PKCS#11 module: dlopen, C_GetFunctionList, C_Initialize with OS locking, C_Finalize at the end.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "error.h"

namespace hsmsignd::pkcs11 {

class Module {
 public:
  // Refuses a relative path, a file that is not regular, and one that group or others may write or
  // that belongs to someone other than root or us: whoever can change the module can read every
  // signature request and the PIN.
  // `init_args` is CK_C_INITIALIZE_ARGS.pReserved at every C_Initialize, this one and every
  // re-initialisation ([token] init_args: NSS softoken reads its database folder from it); empty: NULL,
  // which some modules (tpm2-pkcs11) insist on.
  static Result<std::shared_ptr<Module>> load(const std::filesystem::path& path, std::string init_args = {});

  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module();

  // Only load() makes modules; the key keeps the constructor usable by make_shared.
  class Key {
    friend class Module;
    Key() = default;
  };
  Module(Key, std::filesystem::path path, std::string init_args, void* library, void* functions)
      : path_(std::move(path)), init_args_(std::move(init_args)), library_(library), functions_(functions) {}

  const std::filesystem::path& path() const { return path_; }
  // C_Finalize and C_Initialize again: what a module needs after its device was removed or reset. The
  // caller makes sure no other thread is inside a Cryptoki call meanwhile (SessionPool::recover does).
  Status reinitialize() const;
  // CK_FUNCTION_LIST*, opaque outside pkcs11/ so that only this layer speaks Cryptoki.
  void* raw_function_list() const { return functions_; }

 private:
  std::filesystem::path path_;
  std::string init_args_;  // owned here: the module may keep pReserved past C_Initialize
  void* library_;
  void* functions_;
};

// The checks load() makes before it opens the file, on their own for `--check` and tests.
Status check_module_path(const std::filesystem::path& path);

}  // namespace hsmsignd::pkcs11
