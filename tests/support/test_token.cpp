#include "test_token.h"

#include <openssl/rand.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace hsmsignd::testing {

int run_command(const std::string& command, std::string* output) {
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf{};
  std::string out;
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  if (output) *output = std::move(out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Bytes random_id() {
  Bytes id(16);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return id;
}

TestToken& TestToken::get() {
  static TestToken token;
  return token;
}

std::filesystem::path make_token_dir(const std::string& prefix, const std::string& label, const std::string& pin) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::filesystem::path dir = tmpl;
  std::string out;
  const std::string cmd = "HSMSIGND_PIN=" + pin + " " + HSMSIGND_MAKE_TOKEN + " " + dir.string() + " " + label;
  if (run_command(cmd, &out) != 0) throw std::runtime_error("make-token.sh failed: " + out);
  ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
  return dir;
}

TestToken::TestToken() {
  dir_ = make_token_dir("hsmsignd-test", kLabel, kPin);
  module_ = pkcs11::Module::load(HSMSIGND_SOFTHSM2_MODULE).value();
  info_ = pkcs11::find_token(*module_, {kLabel, {}}).value();
}

TestToken::~TestToken() {
  module_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::unique_ptr<pkcs11::SessionPool> TestToken::open_pool(std::size_t sessions) {
  auto pin = pkcs11::Pin::read_file(pin_file()).value();
  return pkcs11::SessionPool::open(module_, info_, std::move(pin), {sessions, std::chrono::milliseconds(2000)})
      .value();
}

}  // namespace hsmsignd::testing
