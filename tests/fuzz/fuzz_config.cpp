// The configuration loader (daemon/config): the input is the text of a TOML file. It is read both by
// config::parse (text and name) and by config::load (a real file in a private folder under /dev/shm,
// made once), and the two must agree.
//
// Invariants: config::ConfigError is the only exception (config.h: "Throws ConfigError"); its what()
// is one non-empty line that starts with the file name and contains its dotted key; its line is within
// the file. A configuration that loads keeps the promises config.h makes to the layers below: at least
// one keyset, every client with a matching peer, known keysets, a default audience and operation,
// max_ttl <= 15m, default_ttl <= max_ttl, absolute paths, a socket mode granting nothing to others,
// the two sockets distinct, and the lifecycle rules (prepublish >= max_age, retire_after >= max_ttl +
// max_age).
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "fuzz_support.h"

namespace {

using namespace hsmsignd;

const std::filesystem::path& scratch_file() {
  static const std::filesystem::path file = [] {
    std::string dir = "/dev/shm/hsmsignd-fuzz-config-XXXXXX";
    if (::access("/dev/shm", W_OK) != 0) dir = std::filesystem::temp_directory_path().string() + "/hsmsignd-fuzz-config-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    static const std::string remove_me = dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(remove_me, ignored);
    });
    return std::filesystem::path(dir) / "hsmsignd.toml";
  }();
  return file;
}

struct Result {
  bool ok = false;
  std::string error;
  config::Config config;
};

std::size_t count_lines(std::string_view text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1; }

void check_error(const config::ConfigError& e, std::string_view text, const std::filesystem::path& file) {
  const std::string what = e.what();
  FUZZ_CHECK(!what.empty(), "empty ConfigError");
  FUZZ_CHECK(what.starts_with(file.string() + ":"), "ConfigError does not start with the file name: " + what);
  FUZZ_CHECK(std::none_of(what.begin(), what.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }),
             "ConfigError is not one printable line: " + what);
  FUZZ_CHECK(e.file == file, "ConfigError names another file: " + e.file.string());
  FUZZ_CHECK(e.line <= count_lines(text), "ConfigError line " + std::to_string(e.line) + " is past the end: " + what);
  FUZZ_CHECK(what.size() > file.string().size() + 2, "ConfigError without a message: " + what);
}

void check_config(const config::Config& c) {
  auto absolute = [](const std::filesystem::path& p, const char* what) {
    FUZZ_CHECK(p.is_absolute(), std::string(what) + " is not absolute: " + p.string());
  };
  absolute(c.file, "file");
  absolute(c.token.module, "token.module");
  FUZZ_CHECK(c.token.label.empty() != c.token.serial.empty(), "not exactly one of label and serial");
  FUZZ_CHECK(c.token.label.size() <= 32 && c.token.serial.size() <= 16, "label or serial too long");
  FUZZ_CHECK(c.token.sessions >= 1 && c.token.sessions <= 64, "sessions out of range");
  if (!c.token.pin_file.empty()) absolute(c.token.pin_file, "token.pin_file");
  absolute(c.server.socket, "server.socket");
  absolute(c.server.admin_socket, "server.admin_socket");
  FUZZ_CHECK(c.server.socket.native().size() < sizeof(sockaddr_un::sun_path), "socket path too long for bind");
  FUZZ_CHECK(c.server.admin_socket.native().size() < sizeof(sockaddr_un::sun_path), "admin socket path too long");
  FUZZ_CHECK(c.server.socket != c.server.admin_socket, "issuer and admin sockets are one file");
  FUZZ_CHECK((c.server.socket_mode & 0007) == 0 && c.server.socket_mode <= 0777, "socket mode grants others");
  FUZZ_CHECK(c.server.max_body >= 1024 && c.server.max_body <= 16 * 1024 * 1024, "max_body out of range");
  FUZZ_CHECK(c.server.request_timeout.count() >= 1 && c.server.request_timeout.count() <= 300, "request_timeout out of range");
  FUZZ_CHECK(c.server.idle_timeout.count() >= 1 && c.server.idle_timeout.count() <= 3600, "idle_timeout out of range");
  FUZZ_CHECK(c.jwks.listen.empty() == (c.jwks.listen_port == 0) && c.jwks.listen.empty() == c.jwks.listen_host.empty(),
             "jwks.listen and its host/port disagree");
  if (!c.jwks.file.empty()) absolute(c.jwks.file, "jwks.file");
  FUZZ_CHECK(c.jwks.max_age.count() >= 1 && c.jwks.max_age.count() <= 86400, "jwks.max_age out of range");
  absolute(c.state.dir, "state.dir");
  absolute(c.audit.file, "audit.file");
  FUZZ_CHECK(c.audit.checkpoint_every.count() >= 1, "checkpoint_every below 1s");

  FUZZ_CHECK(!c.keysets.empty(), "no keyset");
  for (std::size_t i = 0; i < c.keysets.size(); ++i) {
    const auto& k = c.keysets[i];
    FUZZ_CHECK(!k.name.empty() && k.name.size() <= 32 && k.name != "audit", "bad keyset name " + k.name);
    FUZZ_CHECK(c.keyset(k.name) == &k, "duplicate keyset name " + k.name);
    FUZZ_CHECK(k.prepublish.count() > 0 && k.rotation_period > k.prepublish && k.retire_after.count() > 0,
               "keyset timing out of order: " + k.name);
    FUZZ_CHECK(k.rotation_period <= std::chrono::seconds(3650LL * 86400), "rotation_period over ten years");
    FUZZ_CHECK(k.prepublish >= c.jwks.max_age, "prepublish shorter than jwks.max_age: " + k.name);
    if (key_type(k.algorithm) == KeyType::RSA)
      FUZZ_CHECK(k.rsa_bits == 2048 || k.rsa_bits == 3072 || k.rsa_bits == 4096, "rsa_bits " + std::to_string(k.rsa_bits));
  }
  for (std::size_t i = 0; i < c.clients.size(); ++i) {
    const auto& client = c.clients[i];
    FUZZ_CHECK(!client.name.empty(), "client without a name");
    for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(c.clients[j].name != client.name, "duplicate client name " + client.name);
    FUZZ_CHECK(!client.uids.empty() || !client.gids.empty(), "client " + client.name + " matches no peer");
    for (auto uid : client.uids) FUZZ_CHECK(uid != static_cast<uid_t>(-1), "uid -1 accepted");
    for (auto gid : client.gids) FUZZ_CHECK(gid != static_cast<gid_t>(-1), "gid -1 accepted");
    FUZZ_CHECK(!client.keysets.empty() && !client.operations.empty() && !client.audiences.empty(),
               "client " + client.name + " without a default keyset, operation or audience");
    for (const auto& a : client.audiences) FUZZ_CHECK(!a.empty(), "empty audience");
    FUZZ_CHECK(!client.issuer.empty(), "client without an issuer");
    FUZZ_CHECK(client.max_ttl.count() > 0 && client.max_ttl.count() <= 900, "max_ttl out of range");
    FUZZ_CHECK(client.default_ttl.count() > 0 && client.default_ttl <= client.max_ttl, "default_ttl out of range");
    for (const auto& name : client.keysets) {
      const auto* k = c.keyset(name);
      FUZZ_CHECK(k != nullptr, "client " + client.name + " names an unknown keyset " + name);
      FUZZ_CHECK(k->retire_after >= client.max_ttl + c.jwks.max_age, "retire_after shorter than max_ttl + max_age");
    }
  }
}

Result run(const std::function<config::Config()>& read, std::string_view text, const std::filesystem::path& file) {
  Result r;
  try {
    r.config = read();
    r.ok = true;
  } catch (const config::ConfigError& e) {
    check_error(e, text, file);
    r.error = e.what();
  } catch (const std::exception& e) {
    hsmsignd::fuzz::fail(__FILE__, __LINE__, "only ConfigError", std::string("another exception escaped the loader: ") +
                                                                    typeid(e).name() + ": " + e.what());
  } catch (...) {
    hsmsignd::fuzz::fail(__FILE__, __LINE__, "only ConfigError", "a non-standard exception escaped the loader");
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::unsetenv("CREDENTIALS_DIRECTORY");  // the same result wherever the fuzzer runs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  const auto& file = scratch_file();

  const Result parsed = run([&] { return config::parse(text, file); }, text, file);
  if (parsed.ok) check_config(parsed.config);

  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    FUZZ_CHECK(out.good(), "cannot write the scratch file " + file.string());
  }
  const Result loaded = run([&] { return config::load(file); }, text, file);
  FUZZ_CHECK(parsed.ok == loaded.ok && parsed.error == loaded.error,
             "load and parse disagree: \"" + parsed.error + "\" vs \"" + loaded.error + "\"");
  return 0;
}
