// The daemon put together: signer processes, keyring, audit, sockets, and a clean stop on SIGTERM.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "config/config.h"

namespace hsmsignd {

// A reason not to start, with the exit status the contract gives it (1 refused or failed, 2 config).
struct StartupError : std::runtime_error {
  int exit_status;
  StartupError(int status, const std::string& message) : std::runtime_error(message), exit_status(status) {}
};

class Daemon {
 public:
  explicit Daemon(config::Config config);
  ~Daemon();

  // Opens the token and finds (or, for a keyset with none, generates) the keys, binds the sockets and
  // writes the JWKS file. Throws StartupError.
  void start();
  // Serves until SIGTERM or SIGINT, then finishes the requests in flight. Returns the exit status.
  int run();

  // `hsmsignd --check`: the configuration and the token, without changing either. Returns 0 or 1.
  static int check(const config::Config& config);

 private:
  // The signer processes, before anything else: they own the token.
  void start_signers();

  struct Parts;
  config::Config config_;
  std::unique_ptr<Parts> parts_;
};

}  // namespace hsmsignd
