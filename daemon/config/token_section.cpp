// [token]: which PKCS#11 module and token, how to initialise it, where the PIN comes from, how many
// sessions, and whether keys must carry CKA_LOCAL.
#include <algorithm>
#include <cstdlib>
#include <thread>

#include "config/sections.h"

namespace hsmsignd::config {
namespace {

// CK_TOKEN_INFO holds the label in 32 bytes and the serial in 16: a longer value can never match.
constexpr std::size_t kLabelBytes = 32;
constexpr std::size_t kSerialBytes = 16;

std::filesystem::path read_module(const Section& token) {
  const std::optional<std::string> module = token.string("module");
  if (!module) token.fail("module", "required: the path of the PKCS#11 module");
  if (!std::filesystem::path(*module).is_absolute())
    token.fail("module", in_quotes(*module) +
                             " must be an absolute path: a relative one is searched for along the library path,"
                             " so which code gets loaded would depend on the environment");
  return *module;
}

void read_token_identity(const Section& token, TokenConfig& out) {
  const std::optional<std::string> label = token.string("label");
  const std::optional<std::string> serial = token.string("serial");
  if (label && serial) token.fail("serial", "set label or serial, not both");
  if (!label && !serial) token.fail("label", "required: set label (or serial) to say which token to use");
  if (label) {
    if (label->empty() || label->size() > kLabelBytes) token.fail("label", "must be 1 to 32 bytes long");
    out.label = *label;
  } else {
    if (serial->empty() || serial->size() > kSerialBytes) token.fail("serial", "must be 1 to 16 bytes long");
    out.serial = *serial;
  }
}

// Without pin_file, the PIN is the systemd credential (LoadCredential=pin:...): it then never sits in
// a file the service user could read outside the service.
std::filesystem::path read_pin_file(const Section& token) {
  if (std::optional<std::filesystem::path> file = token.path("pin_file")) return *file;
  // Left empty otherwise: hsmsignctl reads this file outside the service, and the daemon refuses to
  // start without a PIN.
  const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
  if (!credentials || !*credentials) return {};
  return std::filesystem::path(credentials) / "pin";
}

VerifyPolicy read_verify_policy(const Section& token) {
  const std::optional<std::string> policy = token.string("verify_signatures");
  if (!policy || *policy == "all") return VerifyPolicy::all;
  if (*policy == "sampled") return VerifyPolicy::sampled;
  token.fail("verify_signatures", "must be \"all\" or \"sampled\", not " + in_quotes(*policy));
}

// Handed to the module as it is: a module that wants none (tpm2-pkcs11) refuses any, so an empty string is
// a mistake worth naming rather than something to pass along. A NUL would cut the string short unseen.
std::string read_init_args(const Section& token) {
  const std::optional<std::string> args = token.string("init_args");
  if (!args) return {};
  if (args->empty()) token.fail("init_args", "must not be empty: leave it out for a module that takes none");
  if (args->find('\0') != std::string::npos) token.fail("init_args", "must not contain a NUL byte");
  return *args;
}

}  // namespace

TokenConfig read_token(const Section& root) {
  const std::optional<Section> token = root.table("token");
  if (!token) root.fail("token", "required: the [token] table says which PKCS#11 token holds the keys");
  token->allow_only({"module", "label", "serial", "pin_file", "signers", "sessions", "verify_signatures", "init_args",
                     "require_local"});

  TokenConfig out;
  out.module = read_module(*token);
  read_token_identity(*token, out);
  out.pin_file = read_pin_file(*token);
  // SoftHSM signs one signature at a time per process: a process per core, a session each, is what
  // reaches its full rate. A network HSM wants the opposite (see the configuration guide).
  const unsigned cores = std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  out.signers = static_cast<unsigned>(token->integer("signers", 1, 64).value_or(cores));
  out.sessions = static_cast<unsigned>(token->integer("sessions", 1, 64).value_or(out.sessions));
  out.verify_signatures = read_verify_policy(*token);
  out.init_args = read_init_args(*token);
  // On by default: CKA_LOCAL is the token's own word that a key was born inside it. Turning it off is
  // for a token that never says so (NSS softoken), and the custody report then shows it.
  out.require_local = token->boolean("require_local").value_or(true);
  return out;
}

}  // namespace hsmsignd::config
