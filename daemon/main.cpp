// hsmsignd --config FILE [--check] [--allow-root]
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "daemon.h"
#include "log/log.h"
#include "signer/signer_process.h"

namespace {

constexpr const char* kUsage =
    "usage: hsmsignd --config FILE [--check] [--allow-root]\n"
    "  --config FILE  the TOML configuration (see the README)\n"
    "  --check        validate the configuration and the token, print what was found, exit 0 or 1\n"
    "  --allow-root   serve even as root (throw-away tokens in tests; never in production)\n";

// Memory may hold the PIN: no core dumps, and no ptrace by other processes of the same user.
void deny_core_dumps() {
  struct rlimit none {0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  deny_core_dumps();
  ::umask(077);
  // A file-size limit makes an audit write fail (EFBIG, handled: the daemon refuses to sign until it
  // can write again) rather than kill the process.
  std::signal(SIGXFSZ, SIG_IGN);
  // A write to a peer that is gone (a client that hung up, a Redis or a p11-kit server that died) must
  // fail with EPIPE, not end the process: the front serves everyone else, and a signer started from here
  // inherits this (it sets it again itself, see signer_process.cpp).
  std::signal(SIGPIPE, SIG_IGN);
  std::string config_path;
  bool check = false;
  bool allow_root = false;
  bool signer = false;  // started by hsmsignd itself, never by hand
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--allow-root") {
      allow_root = true;
    } else if (arg == "--signer") {
      signer = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "hsmsignd: unknown argument %s\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  // A root process that parses requests from other users is one bug away from owning the host; the
  // systemd unit runs it as the hsmsignd user. --check changes nothing, so an operator may run it as root.
  if (signer) {
    try {
      return hsmsignd::signer::run(hsmsignd::config::load(config_path));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hsmsignd --signer: %s\n", e.what());
      return 2;
    }
  }
  if (::geteuid() == 0 && !allow_root && !check) {
    std::fputs("hsmsignd: refusing to run as root: run it as the hsmsignd user (the systemd unit does), "
               "or pass --allow-root for a throw-away test token\n", stderr);
    return 1;
  }

  try {
    hsmsignd::config::Config config = hsmsignd::config::load(config_path);
    if (check) return hsmsignd::Daemon::check(config);
    hsmsignd::Daemon daemon(std::move(config));
    daemon.start();
    return daemon.run();
  } catch (const hsmsignd::config::ConfigError& e) {
    std::fprintf(stderr, "hsmsignd: %s\n", e.what());
    return check ? 1 : 2;
  } catch (const hsmsignd::StartupError& e) {
    std::fprintf(stderr, "hsmsignd: %s\n", e.what());
    return e.exit_status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hsmsignd: %s\n", e.what());
    return 1;
  }
}
