// A throw-away SoftHSM2 token for the tests of one process: made in a fresh temporary folder with the
// project's own softhsm-config/make-token.sh, found through SOFTHSM2_CONF, removed at exit.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "hsmsignd/bytes.h"
#include "module.h"
#include "session_pool.h"
#include "token.h"

namespace hsmsignd::testing {

class TestToken {
 public:
  static constexpr const char* kLabel = "hsmsignd-test";
  static constexpr const char* kPin = "test-only-pin-4711";  // a throw-away token's PIN, nothing else

  // The process's token, made on first use.
  static TestToken& get();

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path pin_file() const { return dir_ / "pin"; }
  const std::shared_ptr<pkcs11::Module>& module() const { return module_; }
  const pkcs11::TokenInfo& info() const { return info_; }

  std::unique_ptr<pkcs11::SessionPool> open_pool(std::size_t sessions = 4);

  ~TestToken();

 private:
  TestToken();
  std::filesystem::path dir_;
  std::shared_ptr<pkcs11::Module> module_;
  pkcs11::TokenInfo info_;
};

// A fresh SoftHSM token made by softhsm-config/make-token.sh in a new temporary folder (`prefix`-XXXXXX),
// with SOFTHSM2_CONF pointing at it. The folder holds the token, its softhsm2.conf and `pin`.
std::filesystem::path make_token_dir(const std::string& prefix, const std::string& label, const std::string& pin);

// Runs a shell command, returns its exit status; stdout and stderr are captured into `output`.
int run_command(const std::string& command, std::string* output = nullptr);

// A fresh random CKA_ID for a test key.
hsmsignd::Bytes random_id();

}  // namespace hsmsignd::testing
