// A loaded PKCS#11 module: dlopen, C_GetFunctionList, C_Initialize with OS locking, C_Finalize at the end.
#pragma once

#include <filesystem>
#include <memory>

#include "error.h"

namespace hsmsignd::pkcs11 {

class Module {
 public:
  // Refuses a relative path, a file that is not regular, and one that group or others may write or
  // that belongs to someone other than root or us: whoever can change the module can read every
  // signature request and the PIN.
  static Result<std::shared_ptr<Module>> load(const std::filesystem::path& path);

  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module();

  // Only load() makes modules; the key keeps the constructor usable by make_shared.
  class Key {
    friend class Module;
    Key() = default;
  };
  Module(Key, std::filesystem::path path, void* library, void* functions)
      : path_(std::move(path)), library_(library), functions_(functions) {}

  const std::filesystem::path& path() const { return path_; }
  // C_Finalize and C_Initialize again: what a module needs after its device was removed or reset. The
  // caller makes sure no other thread is inside a Cryptoki call meanwhile (SessionPool::recover does).
  Status reinitialize() const;
  // CK_FUNCTION_LIST*, opaque outside pkcs11/ so that only this layer speaks Cryptoki.
  void* raw_function_list() const { return functions_; }

 private:
  std::filesystem::path path_;
  void* library_;
  void* functions_;
};

// The checks load() makes before it opens the file, on their own for `--check` and tests.
Status check_module_path(const std::filesystem::path& path);

}  // namespace hsmsignd::pkcs11
