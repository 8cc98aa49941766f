// The configuration loader: the contract's example loads with every field right, and every rule
// refuses with the file, the line and the key, so an operator can fix the file without guessing.
#include "config/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifndef HSMSIGND_EXAMPLE_CONFIG
#error "HSMSIGND_EXAMPLE_CONFIG must name daemon/config/example.toml"
#endif

namespace {

using hsmsignd::Algorithm;
using hsmsignd::config::Config;
using hsmsignd::config::ConfigError;
using hsmsignd::config::Duration;
using hsmsignd::config::format_duration;
using hsmsignd::config::load;
using hsmsignd::config::Operation;
using hsmsignd::config::parse;
using hsmsignd::config::parse_duration;
using hsmsignd::config::VerifyPolicy;
using namespace std::chrono_literals;

const std::string kFile = "/etc/hsmsignd/hsmsignd.toml";

// The contract's example, made to load here: "root" exists where "auth" does not, the PIN file is
// explicit so the environment does not matter, and rsa_bits is gone (ES256 keys have no size).
constexpr std::string_view kValid = R"([token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "hsmsignd"
pin_file = "pin"
sessions = 4
verify_signatures = "all"

[server]
socket = "/run/hsmsignd/sign.sock"
socket_mode = "0660"
admin_socket = "/run/hsmsignd/admin.sock"
max_body = 65536

[jwks]
listen = "127.0.0.1:8080"
file = "/var/lib/hsmsignd/jwks.json"
max_age = "5m"

[state]
dir = "/var/lib/hsmsignd"

[audit]
file = "/var/log/hsmsignd/audit.jsonl"
checkpoint_every = "5m"

[[keyset]]
name = "default"
algorithm = "ES256"
rotation_period = "30d"
prepublish = "1h"
retire_after = "1d"
destroy_retired = true

[[client]]
name = "auth-service"
users = ["root"]
keysets = ["default"]
operations = ["jwt"]
issuer = "https://auth.example.com"
audiences = ["api-gateway"]
max_ttl = "15m"
default_ttl = "5m"
)";

// Only what is required: the token and one keyset.
constexpr std::string_view kMinimal = R"([token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "hsmsignd"
pin_file = "/etc/hsmsignd/pin"

[[keyset]]
name = "default"
)";

// `text` with its one occurrence of `from` replaced; a `from` that is not there is a broken test.
std::string replaced(std::string_view text, std::string_view from, std::string_view to) {
  std::string out(text);
  const std::size_t at = out.find(from);
  if (at == std::string::npos) {
    ADD_FAILURE() << "the test config has no " << from;
    return out;
  }
  return out.replace(at, from.size(), to);
}

std::size_t line_containing(std::string_view text, std::string_view needle) {
  const std::size_t at = text.find(needle);
  if (at == std::string_view::npos) {
    ADD_FAILURE() << "the test config has no " << needle;
    return 0;
  }
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

// Parses `toml`, which must be refused with an error that names `key` on the line holding `marker`
// (no line at all when `marker` is empty), and whose text contains `says`.
testing::AssertionResult Refused(std::string_view toml, std::string_view key, std::string_view marker,
                                 std::string_view says) {
  try {
    parse(toml, kFile);
    return testing::AssertionFailure() << "accepted; expected an error about " << key;
  } catch (const ConfigError& e) {
    const std::size_t line = marker.empty() ? 0 : line_containing(toml, marker);
    std::string prefix = kFile + (line ? ":" + std::to_string(line) : "") + ": ";
    if (!key.empty()) prefix += std::string(key) + ": ";
    const std::string what = e.what();
    if (e.file != kFile || e.line != line || e.key != key || !what.starts_with(prefix) ||
        what.find(says) == std::string::npos)
      return testing::AssertionFailure() << "got:  " << what << "\nwant: " << prefix << "...(" << says << ")...";
    return testing::AssertionSuccess() << what;
  }
}

// Sets (or, with nullopt, removes) an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value)
      setenv(name_, value->c_str(), 1);
    else
      unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

// --- the whole file -------------------------------------------------------------------------------

TEST(Config, ParsesTheContractExampleWithEveryField) {
  const Config c = parse(kValid, kFile);

  EXPECT_EQ(c.file, kFile);
  EXPECT_EQ(c.token.module, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(c.token.label, "hsmsignd");
  EXPECT_EQ(c.token.serial, "");
  EXPECT_EQ(c.token.pin_file, "/etc/hsmsignd/pin");
  EXPECT_EQ(c.token.sessions, 4u);
  EXPECT_EQ(c.token.verify_signatures, VerifyPolicy::all);

  EXPECT_EQ(c.server.socket, "/run/hsmsignd/sign.sock");
  EXPECT_EQ(c.server.socket_mode, 0660u);
  EXPECT_EQ(c.server.admin_socket, "/run/hsmsignd/admin.sock");
  EXPECT_EQ(c.server.max_body, 65536u);

  EXPECT_EQ(c.jwks.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.jwks.listen_host, "127.0.0.1");
  EXPECT_EQ(c.jwks.listen_port, 8080);
  EXPECT_EQ(c.jwks.file, "/var/lib/hsmsignd/jwks.json");
  EXPECT_EQ(c.jwks.max_age, 5min);

  EXPECT_EQ(c.state.dir, "/var/lib/hsmsignd");
  EXPECT_EQ(c.audit.file, "/var/log/hsmsignd/audit.jsonl");
  EXPECT_EQ(c.audit.checkpoint_every, 5min);

  ASSERT_EQ(c.keysets.size(), 1u);
  const auto& k = c.keysets[0];
  EXPECT_EQ(k.name, "default");
  EXPECT_EQ(k.algorithm, Algorithm::ES256);
  EXPECT_EQ(k.rotation_period, 30 * 24h);
  EXPECT_EQ(k.prepublish, 1h);
  EXPECT_EQ(k.retire_after, 24h);
  EXPECT_TRUE(k.destroy_retired);
  EXPECT_EQ(c.keyset("default"), &k);
  EXPECT_EQ(c.keyset("other"), nullptr);

  ASSERT_EQ(c.clients.size(), 1u);
  const auto& client = c.clients[0];
  EXPECT_EQ(client.name, "auth-service");
  EXPECT_EQ(client.users, std::vector<std::string>{"root"});
  EXPECT_EQ(client.uids, std::vector<uid_t>{0});
  EXPECT_TRUE(client.groups.empty());
  EXPECT_TRUE(client.gids.empty());
  EXPECT_EQ(client.keysets, std::vector<std::string>{"default"});
  EXPECT_EQ(client.operations, std::vector<Operation>{Operation::jwt});
  EXPECT_EQ(client.issuer, "https://auth.example.com");
  EXPECT_EQ(client.audiences, std::vector<std::string>{"api-gateway"});
  EXPECT_EQ(client.max_ttl, 15min);
  EXPECT_EQ(client.default_ttl, 5min);
}

// The example mostly spells out defaults; this one proves each key is read, not defaulted.
TEST(Config, ReadsEveryKeyRatherThanItsDefault) {
  const Config c = parse(R"([token]
module = "/opt/hsm/lib/pkcs11.so"
serial = "0123456789abcdef"
pin_file = "/etc/hsmsignd/pin"
sessions = 16
signers = 3
verify_signatures = "sampled"

[server]
socket = "/run/x/sign.sock"
socket_mode = "0600"
admin_socket = "/run/x/admin.sock"
max_body = 1048576

[jwks]
listen = "[::1]:9443"
file = "/srv/jwks.json"
max_age = "10m"

[state]
dir = "/srv/state"

[audit]
file = "/srv/audit.jsonl"
checkpoint_every = "90s"

[[keyset]]
name = "rsa-keys_2"
algorithm = "PS256"
rsa_bits = 4096
rotation_period = "7d"
prepublish = "2h"
retire_after = "2d"
destroy_retired = false

[[client]]
name = "batch"
uids = [1001, 1002]
gids = [2000]
keysets = ["rsa-keys_2"]
operations = ["sign", "jws", "jwt"]
issuer = "urn:batch"
audiences = ["a", "b"]
max_ttl = "10m"
default_ttl = "1m"
)",
                         kFile);
  EXPECT_EQ(c.token.module, "/opt/hsm/lib/pkcs11.so");
  EXPECT_EQ(c.token.label, "");
  EXPECT_EQ(c.token.serial, "0123456789abcdef");
  EXPECT_EQ(c.token.sessions, 16u);
  EXPECT_EQ(c.token.signers, 3u);
  EXPECT_EQ(c.token.verify_signatures, VerifyPolicy::sampled);
  EXPECT_EQ(c.server.socket, "/run/x/sign.sock");
  EXPECT_EQ(c.server.socket_mode, 0600u);
  EXPECT_EQ(c.server.admin_socket, "/run/x/admin.sock");
  EXPECT_EQ(c.server.max_body, 1048576u);
  EXPECT_EQ(c.jwks.listen_host, "::1");
  EXPECT_EQ(c.jwks.listen_port, 9443);
  EXPECT_EQ(c.jwks.file, "/srv/jwks.json");
  EXPECT_EQ(c.jwks.max_age, 10min);
  EXPECT_EQ(c.state.dir, "/srv/state");
  EXPECT_EQ(c.audit.file, "/srv/audit.jsonl");
  EXPECT_EQ(c.audit.checkpoint_every, 90s);
  const auto& k = c.keysets.at(0);
  EXPECT_EQ(k.name, "rsa-keys_2");
  EXPECT_EQ(k.algorithm, Algorithm::PS256);
  EXPECT_EQ(k.rsa_bits, 4096u);
  EXPECT_EQ(k.rotation_period, 7 * 24h);
  EXPECT_EQ(k.prepublish, 2h);
  EXPECT_EQ(k.retire_after, 48h);
  EXPECT_FALSE(k.destroy_retired);
  const auto& client = c.clients.at(0);
  EXPECT_EQ(client.uids, (std::vector<uid_t>{1001, 1002}));
  EXPECT_EQ(client.gids, std::vector<gid_t>{2000});
  EXPECT_EQ(client.operations, (std::vector<Operation>{Operation::sign, Operation::jws, Operation::jwt}));
  EXPECT_EQ(client.issuer, "urn:batch");
  EXPECT_EQ(client.audiences, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(client.max_ttl, 10min);
  EXPECT_EQ(client.default_ttl, 1min);
}

TEST(Config, LoadsTheInstalledExampleFile) {
  const ScopedEnv credentials("CREDENTIALS_DIRECTORY", "/run/credentials/hsmsignd.service");
  const Config c = load(HSMSIGND_EXAMPLE_CONFIG);
  EXPECT_EQ(c.file, HSMSIGND_EXAMPLE_CONFIG);
  EXPECT_EQ(c.token.pin_file, "/run/credentials/hsmsignd.service/pin");
  EXPECT_EQ(c.token.label, "hsmsignd");
  EXPECT_EQ(c.server.socket_mode, 0660u);
  EXPECT_EQ(c.jwks.listen_port, 8080);
  ASSERT_EQ(c.keysets.size(), 1u);
  EXPECT_EQ(c.keysets[0].retire_after, 24h);
  ASSERT_EQ(c.clients.size(), 1u);
  EXPECT_EQ(c.clients[0].uids, std::vector<uid_t>{0});
  EXPECT_EQ(c.clients[0].audiences, std::vector<std::string>{"api-gateway"});
}

TEST(Config, LeavesOutOptionalTablesForTheirDefaults) {
  const Config c = parse(kMinimal, kFile);
  EXPECT_EQ(c.token.sessions, 1u);
  EXPECT_EQ(c.token.signers, std::clamp(std::thread::hardware_concurrency(), 1u, 64u));
  EXPECT_EQ(c.token.verify_signatures, VerifyPolicy::all);
  EXPECT_EQ(c.server.socket, "/run/hsmsignd/sign.sock");
  EXPECT_EQ(c.server.socket_mode, 0660u);
  EXPECT_EQ(c.server.admin_socket, "/run/hsmsignd/admin.sock");
  EXPECT_EQ(c.server.max_body, 65536u);
  EXPECT_EQ(c.jwks.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.jwks.listen_host, "127.0.0.1");
  EXPECT_EQ(c.jwks.listen_port, 8080);
  EXPECT_TRUE(c.jwks.file.empty());
  EXPECT_EQ(c.jwks.max_age, 5min);
  EXPECT_EQ(c.state.dir, "/var/lib/hsmsignd");
  EXPECT_EQ(c.audit.file, "/var/log/hsmsignd/audit.jsonl");
  EXPECT_EQ(c.audit.checkpoint_every, 5min);
  EXPECT_EQ(c.keysets.at(0).algorithm, Algorithm::ES256);
  EXPECT_EQ(c.keysets.at(0).rotation_period, 30 * 24h);
  // No clients: a daemon that only publishes its JWKS.
  EXPECT_TRUE(c.clients.empty());
}

TEST(Config, ResolvesRelativePathsAgainstTheConfigFolder) {
  const std::string text = std::string(R"([token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "hsmsignd"
pin_file = "secrets/pin"

[server]
socket = "sign.sock"
admin_socket = "../run/admin.sock"

[jwks]
file = "jwks.json"

[state]
dir = "state"

[audit]
file = "log/audit.jsonl"

[[keyset]]
name = "default"
)");
  const Config c = parse(text, "/srv/hsmsignd/conf.toml");
  EXPECT_EQ(c.token.pin_file, "/srv/hsmsignd/secrets/pin");
  EXPECT_EQ(c.server.socket, "/srv/hsmsignd/sign.sock");
  EXPECT_EQ(c.server.admin_socket, "/srv/hsmsignd/../run/admin.sock");
  EXPECT_EQ(c.jwks.file, "/srv/hsmsignd/jwks.json");
  EXPECT_EQ(c.state.dir, "/srv/hsmsignd/state");
  EXPECT_EQ(c.audit.file, "/srv/hsmsignd/log/audit.jsonl");

  // A config named relative to the working directory still yields absolute paths.
  const Config relative = parse(text, "conf/hsmsignd.toml");
  EXPECT_TRUE(relative.file.is_absolute());
  EXPECT_EQ(relative.token.pin_file, std::filesystem::current_path() / "conf" / "secrets/pin");
}

TEST(Config, RefusesAnUnknownKeyNamingItsLine) {
  // At the top level, in a table, in a [[keyset]] and in a [[client]]: a typo never falls back to a default.
  const std::string top = "verbose = true\n" + std::string(kValid);
  EXPECT_TRUE(Refused(top, "verbose", "verbose", "unknown key at the top level"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "sesions = 4"), "token.sesions", "sesions", "unknown key in token"));
  EXPECT_TRUE(Refused(replaced(kValid, "retire_after = \"1d\"", "retire_afer = \"1d\""), "keyset[0].retire_afer",
                      "retire_afer", "unknown key in keyset[0]"));
  EXPECT_TRUE(Refused(replaced(kValid, "audiences = ", "audience = "), "client[0].audience", "audience =",
                      "known: name, users"));
  EXPECT_TRUE(Refused(std::string(kValid) + "[logging]\nlevel = 1\n", "logging", "[logging]", "unknown key"));
}

TEST(Config, RefusesAValueOfTheWrongType) {
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "sessions = \"4\""), "token.sessions", "sessions",
                      "must be an integer, not a string"));
  EXPECT_TRUE(Refused(replaced(kValid, "destroy_retired = true", "destroy_retired = \"yes\""),
                      "keyset[0].destroy_retired", "destroy_retired", "must be true or false, not a string"));
  EXPECT_TRUE(Refused(replaced(kValid, "users = [\"root\"]", "users = \"root\""), "client[0].users", "users =",
                      "must be an array of strings, not a string"));
  EXPECT_TRUE(Refused(replaced(kValid, "audiences = [\"api-gateway\"]", "audiences = [\"a\", 7]"),
                      "client[0].audiences[1]", "audiences", "must be a string, not an integer"));
  EXPECT_TRUE(Refused(replaced(kValid, "max_ttl = \"15m\"", "max_ttl = 900"), "client[0].max_ttl", "max_ttl",
                      "must be a duration string"));
  EXPECT_TRUE(Refused("server = 1\n" + std::string(kMinimal), "server", "server = 1", "must be a table"));
  EXPECT_TRUE(Refused(replaced(kValid, "[[keyset]]", "[keyset]"), "keyset", "[keyset]", "must be an array of tables"));
}

TEST(Config, ReportsATomlSyntaxErrorWithTheParserLine) {
  EXPECT_TRUE(Refused(replaced(kValid, "max_body = 65536", "max_body = "), "", "max_body", "expected"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "sessions = 4\nsessions = 5"), "", "sessions = 5", "sessions"));
}

TEST(Config, KeepsEveryErrorOnOneLine) {
  // A quoted TOML key may hold a newline; the log line must not.
  try {
    parse("\"bad\\nkey\" = 1\n" + std::string(kValid), kFile);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad\\nkey"), std::string::npos) << e.what();
  }
}

TEST(Config, LoadNamesAFileItCannotRead) {
  try {
    load("/nonexistent/hsmsignd.toml");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 0u);
    EXPECT_TRUE(std::string(e.what()).starts_with("/nonexistent/hsmsignd.toml: ")) << e.what();
  }
}

// --- [token] --------------------------------------------------------------------------------------

TEST(Config, RefusesARelativeOrMissingModulePath) {
  EXPECT_TRUE(Refused(replaced(kValid, "\"/usr/lib/softhsm/libsofthsm2.so\"", "\"libsofthsm2.so\""), "token.module",
                      "module", "\"libsofthsm2.so\" must be an absolute path"));
  EXPECT_TRUE(Refused(replaced(kValid, "module = \"/usr/lib/softhsm/libsofthsm2.so\"\n", ""), "token.module",
                      "[token]", "required"));
}

TEST(Config, RequiresExactlyOneOfLabelAndSerial) {
  EXPECT_TRUE(Refused(replaced(kValid, "label = \"hsmsignd\"", "label = \"hsmsignd\"\nserial = \"1234\""), "token.serial",
                      "serial", "set label or serial, not both"));
  EXPECT_TRUE(Refused(replaced(kValid, "label = \"hsmsignd\"\n", ""), "token.label", "[token]", "required"));
  EXPECT_TRUE(Refused(replaced(kValid, "label = \"hsmsignd\"", "label = \"" + std::string(33, 'x') + "\""),
                      "token.label", "label", "1 to 32 bytes"));
  EXPECT_EQ(parse(replaced(kValid, "label = \"hsmsignd\"", "serial = \"1234\""), kFile).token.serial, "1234");
}

TEST(Config, TakesThePinFromTheSystemdCredentialsFolder) {
  const ScopedEnv credentials("CREDENTIALS_DIRECTORY", "/run/credentials/hsmsignd.service");
  const Config c = parse(replaced(kValid, "pin_file = \"pin\"\n", ""), kFile);
  EXPECT_EQ(c.token.pin_file, "/run/credentials/hsmsignd.service/pin");
}

TEST(Config, LeavesThePinFileEmptyWithoutCredentialsDirectory) {
  // hsmsignctl reads the same file outside the service; the daemon refuses to start without a PIN.
  const ScopedEnv credentials("CREDENTIALS_DIRECTORY", std::nullopt);
  EXPECT_TRUE(parse(replaced(kValid, "pin_file = \"pin\"\n", ""), kFile).token.pin_file.empty());
}

TEST(Config, ReadsRequestAndIdleTimeouts) {
  const Config defaults = parse(kValid, kFile);
  EXPECT_EQ(defaults.server.request_timeout, 10s);
  EXPECT_EQ(defaults.server.idle_timeout, 60s);
  const Config c = parse(replaced(kValid, "max_body = 65536", "max_body = 65536\nrequest_timeout = \"2s\"\nidle_timeout = \"5m\""), kFile);
  EXPECT_EQ(c.server.request_timeout, 2s);
  EXPECT_EQ(c.server.idle_timeout, 300s);
  EXPECT_TRUE(Refused(replaced(kValid, "max_body = 65536", "max_body = 65536\nrequest_timeout = \"10m\""),
                      "server.request_timeout", "request_timeout", "1s to 5m"));
  EXPECT_TRUE(Refused(replaced(kValid, "max_body = 65536", "max_body = 65536\nidle_timeout = \"2h\""),
                      "server.idle_timeout", "idle_timeout", "1s to 1h"));
}

TEST(Config, RefusesSessionsOutsideOneToSixtyFour) {
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "sessions = 0"), "token.sessions", "sessions",
                      "must be from 1 to 64, not 0"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "sessions = 65"), "token.sessions", "sessions",
                      "must be from 1 to 64, not 65"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "signers = 0"), "token.signers", "signers",
                      "must be from 1 to 64, not 0"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "signers = 65"), "token.signers", "signers",
                      "must be from 1 to 64, not 65"));
  EXPECT_EQ(parse(replaced(kValid, "sessions = 4", "sessions = 64"), kFile).token.sessions, 64u);
}

TEST(Config, RefusesAnUnknownVerificationPolicy) {
  EXPECT_TRUE(Refused(replaced(kValid, "verify_signatures = \"all\"", "verify_signatures = \"none\""),
                      "token.verify_signatures", "verify_signatures", "must be \"all\" or \"sampled\""));
}

TEST(Config, InitArgsAndRequireLocalDefaultToNoneAndTrue) {
  const Config c = parse(kValid, kFile);
  EXPECT_EQ(c.token.init_args, "");  // pReserved = NULL
  EXPECT_TRUE(c.token.require_local);
}

TEST(Config, ReadsInitArgsAsTheyAreAndRequireLocalFalse) {
  constexpr std::string_view kNss =
      R"(init_args = "configdir='sql:/var/lib/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags= dbTokenDescription='hsmsignd'")";
  const Config c = parse(replaced(kValid, "sessions = 4", std::string(kNss) + "\nrequire_local = false\nsessions = 4"), kFile);
  EXPECT_EQ(c.token.init_args,
            "configdir='sql:/var/lib/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags= dbTokenDescription='hsmsignd'");
  EXPECT_FALSE(c.token.require_local);
}

TEST(Config, RefusesAnEmptyInitArgsAndANonBooleanRequireLocal) {
  // Fails because an empty pReserved is not NULL: a module that wants none would refuse it.
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "init_args = \"\""), "token.init_args", "init_args",
                      "must not be empty"));
  EXPECT_TRUE(Refused(replaced(kValid, "sessions = 4", "require_local = \"no\""), "token.require_local",
                      "require_local", ""));
}

// --- [server] -------------------------------------------------------------------------------------

TEST(Config, RefusesASocketModeThatGrantsOthersAnything) {
  for (const char* mode : {"0666", "0661", "0664", "0007"})
    EXPECT_TRUE(Refused(replaced(kValid, "socket_mode = \"0660\"", std::string("socket_mode = \"") + mode + "\""),
                        "server.socket_mode", "socket_mode", "grants access to others"));
}

TEST(Config, RefusesASocketModeThatIsNotOctalPermissionBits) {
  for (const char* mode : {"0680", "rw-rw----", "01660", "", "0x1b0", " 0660"})
    EXPECT_TRUE(Refused(replaced(kValid, "socket_mode = \"0660\"", std::string("socket_mode = \"") + mode + "\""),
                        "server.socket_mode", "socket_mode", "must be octal permission bits"));
  EXPECT_EQ(parse(replaced(kValid, "socket_mode = \"0660\"", "socket_mode = \"600\""), kFile).server.socket_mode, 0600u);
}

TEST(Config, RefusesMaxBodyOutsideOneKibToSixteenMib) {
  EXPECT_TRUE(Refused(replaced(kValid, "max_body = 65536", "max_body = 1023"), "server.max_body", "max_body",
                      "must be from 1024 to 16777216"));
  EXPECT_TRUE(Refused(replaced(kValid, "max_body = 65536", "max_body = 16777217"), "server.max_body", "max_body",
                      "not 16777217"));
  EXPECT_EQ(parse(replaced(kValid, "max_body = 65536", "max_body = 1024"), kFile).server.max_body, 1024u);
}

TEST(Config, RefusesTheSameFileForIssuerAndAdminSockets) {
  EXPECT_TRUE(Refused(replaced(kValid, "admin.sock", "sign.sock"), "server.admin_socket", "admin_socket",
                      "must be different"));
}

// --- [jwks] ---------------------------------------------------------------------------------------

TEST(Config, ParsesJwksListenAddresses) {
  auto listen = [](std::string_view address) {
    return parse(replaced(kValid, "listen = \"127.0.0.1:8080\"", "listen = \"" + std::string(address) + "\""), kFile).jwks;
  };
  EXPECT_EQ(listen("0.0.0.0:80").listen_host, "0.0.0.0");
  EXPECT_EQ(listen("0.0.0.0:80").listen_port, 80);
  EXPECT_EQ(listen("[::1]:65535").listen_host, "::1");
  EXPECT_EQ(listen("[::1]:65535").listen_port, 65535);
  const auto off = listen("");
  EXPECT_EQ(off.listen, "");
  EXPECT_EQ(off.listen_host, "");
  EXPECT_EQ(off.listen_port, 0);
}

TEST(Config, RefusesHostNamesAndBadPortsInJwksListen) {
  for (const char* address : {"localhost:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80",
                              "127.1:80", "::1:8080", "[::1]8080", "[fe80::1%eth0]:80", "[127.0.0.1]:80"})
    EXPECT_TRUE(Refused(replaced(kValid, "listen = \"127.0.0.1:8080\"", "listen = \"" + std::string(address) + "\""),
                        "jwks.listen", "listen", "IP literal"))
        << address;
}

TEST(Config, RefusesAJwksMaxAgeOutsideOneSecondToOneDay) {
  EXPECT_TRUE(Refused(replaced(kValid, "max_age = \"5m\"", "max_age = \"0s\""), "jwks.max_age", "max_age",
                      "must be from 1s to 1d, not 0s"));
  EXPECT_TRUE(Refused(replaced(kValid, "max_age = \"5m\"", "max_age = \"25h\""), "jwks.max_age", "max_age",
                      "must be from 1s to 1d, not 25h"));
}

// --- [audit] --------------------------------------------------------------------------------------

TEST(Config, RefusesACheckpointIntervalOfZero) {
  EXPECT_TRUE(Refused(replaced(kValid, "checkpoint_every = \"5m\"", "checkpoint_every = \"0m\""),
                      "audit.checkpoint_every", "checkpoint_every", "at least 1s"));
}

// --- [[keyset]] -----------------------------------------------------------------------------------

TEST(Config, RequiresAtLeastOneKeyset) {
  const std::string no_keysets = std::string(kValid.substr(0, kValid.find("[[keyset]]")));
  EXPECT_TRUE(Refused(no_keysets, "keyset", "", "at least one [[keyset]]"));
  EXPECT_TRUE(Refused("keyset = []\n" + no_keysets, "keyset", "keyset = []", "at least one [[keyset]]"));
}

TEST(Config, RefusesABadKeysetName) {
  for (const char* name : {"Default", "-default", "_default", "", "de fault", "défaut"})
    EXPECT_TRUE(Refused(replaced(kValid, "name = \"default\"", "name = \"" + std::string(name) + "\""),
                        "keyset[0].name", "name = \"", "is not a keyset name"))
        << name;
  EXPECT_TRUE(Refused(replaced(kValid, "name = \"default\"", "name = \"" + std::string(33, 'a') + "\""), "keyset[0].name",
                      "name = \"", "1 to 32"));
  EXPECT_TRUE(Refused(replaced(kValid, "name = \"default\"", "name = \"audit\""), "keyset[0].name", "name = \"audit\"",
                      "reserved"));
  const std::string two = replaced(kValid, "[[client]]", "[[keyset]]\nname = \"default\" # again\n\n[[client]]");
  EXPECT_TRUE(Refused(two, "keyset[1].name", "# again", "already the name of keyset[0]"));
  // 32 characters, digits first, _ and - inside: all fine.
  const std::string longest = "0" + std::string(29, 'a') + "_-";
  EXPECT_NE(parse(replaced(replaced(kValid, "name = \"default\"", "name = \"" + longest + "\""), "keysets = [\"default\"]",
                           "keysets = [\"" + longest + "\"]"),
                  kFile)
                .keyset(longest),
            nullptr);
}

TEST(Config, RefusesNoneAndHmacBecauseItSignsOnlyAsymmetrically) {
  for (const char* algorithm : {"none", "None", "HS256", "HS512", "hs384"})
    EXPECT_TRUE(Refused(replaced(kValid, "algorithm = \"ES256\"", "algorithm = \"" + std::string(algorithm) + "\""),
                        "keyset[0].algorithm", "algorithm", "signs only with asymmetric algorithms"))
        << algorithm;
  for (const char* algorithm : {"es256", "RS512", "Ed25519", ""})
    EXPECT_TRUE(Refused(replaced(kValid, "algorithm = \"ES256\"", "algorithm = \"" + std::string(algorithm) + "\""),
                        "keyset[0].algorithm", "algorithm", "use one of ES256, ES384, RS256, PS256, EdDSA"))
        << algorithm;
  EXPECT_EQ(parse(replaced(kValid, "\"ES256\"", "\"EdDSA\""), kFile).keysets[0].algorithm, Algorithm::EdDSA);
}

TEST(Config, AcceptsRsaBitsOnlyForRsaKeysetsAndOnlyStandardSizes) {
  const std::string rsa = replaced(kValid, "algorithm = \"ES256\"", "algorithm = \"RS256\"\nrsa_bits = 3072");
  EXPECT_EQ(parse(rsa, kFile).keysets[0].rsa_bits, 3072u);
  EXPECT_EQ(parse(replaced(kValid, "\"ES256\"", "\"RS256\""), kFile).keysets[0].rsa_bits, 2048u);
  EXPECT_TRUE(Refused(replaced(rsa, "rsa_bits = 3072", "rsa_bits = 1024"), "keyset[0].rsa_bits", "rsa_bits",
                      "must be 2048, 3072 or 4096, not 1024"));
  EXPECT_TRUE(Refused(replaced(kValid, "algorithm = \"ES256\"", "algorithm = \"ES256\"\nrsa_bits = 2048"),
                      "keyset[0].rsa_bits", "rsa_bits", "only RS256 and PS256 keys have a size; this keyset is ES256"));
}

TEST(Config, RequiresRotationPeriodLongerThanPrepublishLongerThanZero) {
  EXPECT_TRUE(Refused(replaced(kValid, "rotation_period = \"30d\"", "rotation_period = \"60m\""),
                      "keyset[0].rotation_period", "rotation_period", "1h must be longer than prepublish (1h)"));
  EXPECT_TRUE(Refused(replaced(kValid, "prepublish = \"1h\"", "prepublish = \"0s\""), "keyset[0].prepublish",
                      "prepublish", "must be longer than 0s"));
  EXPECT_TRUE(Refused(replaced(kValid, "retire_after = \"1d\"", "retire_after = \"0d\""), "keyset[0].retire_after",
                      "retire_after", "must be longer than 0s"));
}

TEST(Config, RequiresPrepublishAtLeastTheJwksMaxAge) {
  EXPECT_TRUE(Refused(replaced(kValid, "prepublish = \"1h\"", "prepublish = \"299s\""), "keyset[0].prepublish",
                      "prepublish", "299s is shorter than jwks.max_age 5m (300s)"));
  // On the boundary: a verifier refreshing its cache just in time still sees the key.
  EXPECT_EQ(parse(replaced(kValid, "prepublish = \"1h\"", "prepublish = \"5m\""), kFile).keysets[0].prepublish, 5min);
}

TEST(Config, RefusesRetireAfterShorterThanMaxTtlPlusMaxAgeGivingTheNumbers) {
  // 19m < 15m (the client's max_ttl) + 5m (jwks.max_age).
  EXPECT_TRUE(Refused(replaced(kValid, "retire_after = \"1d\"", "retire_after = \"19m\""), "keyset[0].retire_after",
                      "retire_after",
                      "19m (1140s) is shorter than the longest max_ttl of its clients, 15m (900s) of client "
                      "\"auth-service\", plus jwks.max_age 5m (300s) = 20m (1200s): a verifier could still hold a "
                      "token whose key it can no longer find"));
  // Without clients the JWKS cache alone still counts.
  const std::string no_clients = std::string(kValid.substr(0, kValid.find("[[client]]")));
  EXPECT_TRUE(Refused(replaced(no_clients, "retire_after = \"1d\"", "retire_after = \"4m\""), "keyset[0].retire_after",
                      "retire_after", "4m (240s) is shorter than jwks.max_age 5m (300s)"));
}

TEST(Config, AcceptsRetireAfterExactlyMaxTtlPlusMaxAge) {
  // A second client with a shorter max_ttl does not lower the bound: the longest one counts.
  const std::string text = replaced(kValid, "retire_after = \"1d\"", "retire_after = \"20m\"") +
                           "\n[[client]]\nname = \"short\"\nuids = [1]\nkeysets = [\"default\"]\nissuer = \"x\"\n"
                           "audiences = [\"y\"]\nmax_ttl = \"1m\"\n";
  EXPECT_EQ(parse(text, kFile).keysets[0].retire_after, 20min);
  EXPECT_TRUE(Refused(replaced(text, "retire_after = \"20m\"", "retire_after = \"1199s\""), "keyset[0].retire_after",
                      "retire_after", "client \"auth-service\""));
}

TEST(Config, RefusesANonDurationNamingItsLine) {
  EXPECT_TRUE(Refused(replaced(kValid, "rotation_period = \"30d\"", "rotation_period = \"30 days\""),
                      "keyset[0].rotation_period", "rotation_period",
                      R"(not a duration ("30 days"); use e.g. "90s", "15m", "1h", "30d")"));
  EXPECT_TRUE(Refused(replaced(kValid, "rotation_period = \"30d\"", "rotation_period = \"99999999999999999999d\""),
                      "keyset[0].rotation_period", "rotation_period", "is too long; at most 3650d"));
}

// --- [[client]] -----------------------------------------------------------------------------------

TEST(Config, RefusesAClientThatMatchesNoPeer) {
  EXPECT_TRUE(Refused(replaced(kValid, "users = [\"root\"]", "users = []"), "client[0].users", "users = []",
                      "set at least one of users, uids, groups or gids"));
}

TEST(Config, ResolvesUsersAndGroupsAndRefusesUnknownOnes) {
  const Config c = parse(
      replaced(kValid, "users = [\"root\"]", "users = [\"root\"]\nuids = [1001]\ngroups = [\"root\"]\ngids = [4242]"), kFile);
  const auto& client = c.clients.at(0);
  EXPECT_EQ(client.users, std::vector<std::string>{"root"});
  EXPECT_EQ(client.uids, (std::vector<uid_t>{1001, 0}));
  EXPECT_EQ(client.groups, std::vector<std::string>{"root"});
  EXPECT_EQ(client.gids, (std::vector<gid_t>{4242, 0}));

  EXPECT_TRUE(Refused(replaced(kValid, "users = [\"root\"]", "users = [\"root\",\n  \"no-such-user-hsmsignd\"]"),
                      "client[0].users[1]", "no-such-user", "no such user \"no-such-user-hsmsignd\""));
  EXPECT_TRUE(Refused(replaced(kValid, "users = [\"root\"]", "groups = [\"no-such-group-hsmsignd\"]"),
                      "client[0].groups[0]", "groups", "no such group"));
  EXPECT_TRUE(Refused(replaced(kValid, "users = [\"root\"]", "uids = [-1]"), "client[0].uids[0]", "uids",
                      "must be from 0 to 4294967294"));
}

TEST(Config, RefusesAClientKeysetThatDoesNotExist) {
  EXPECT_TRUE(Refused(replaced(kValid, "keysets = [\"default\"]", "keysets = [\"default\", \"legacy\"]"),
                      "client[0].keysets[1]", "keysets =", "no [[keyset]] is named \"legacy\""));
  EXPECT_TRUE(Refused(replaced(kValid, "keysets = [\"default\"]", "keysets = []"), "client[0].keysets", "keysets =",
                      "required"));
}

TEST(Config, DefaultsOperationsToJwtAndRefusesUnknownOnes) {
  EXPECT_EQ(parse(replaced(kValid, "operations = [\"jwt\"]\n", ""), kFile).clients[0].operations,
            std::vector<Operation>{Operation::jwt});
  EXPECT_TRUE(Refused(replaced(kValid, "operations = [\"jwt\"]", "operations = [\"jwt\", \"decrypt\"]"),
                      "client[0].operations[1]", "operations", "unknown operation \"decrypt\"; use jwt, jws or sign"));
  EXPECT_TRUE(Refused(replaced(kValid, "operations = [\"jwt\"]", "operations = []"), "client[0].operations",
                      "operations", "must not be empty"));
}

TEST(Config, RequiresAnIssuerAndAudiences) {
  EXPECT_TRUE(Refused(replaced(kValid, "issuer = \"https://auth.example.com\"\n", ""), "client[0].issuer", "[[client]]",
                      "required"));
  EXPECT_TRUE(Refused(replaced(kValid, "issuer = \"https://auth.example.com\"", "issuer = \"\""), "client[0].issuer",
                      "issuer", "required"));
  EXPECT_TRUE(Refused(replaced(kValid, "audiences = [\"api-gateway\"]\n", ""), "client[0].audiences", "[[client]]",
                      "required"));
  EXPECT_TRUE(Refused(replaced(kValid, "audiences = [\"api-gateway\"]", "audiences = []"), "client[0].audiences",
                      "audiences", "non-empty array"));
  EXPECT_TRUE(Refused(replaced(kValid, "audiences = [\"api-gateway\"]", "audiences = [\"api-gateway\", \"\"]"),
                      "client[0].audiences[1]", "audiences", "must not be empty"));
}

TEST(Config, AClientWithoutTheJwtOperationNeedsNoIssuerNorAudiences) {
  // An nginx master (root) and its workers: two uids, one client that only signs digests.
  const std::string signer = std::string(kValid) +
                             "\n[[client]]\nname = \"nginx\"\nuids = [0, 33]\nkeysets = [\"default\"]\n"
                             "operations = [\"sign\"]\n";
  const Config c = parse(signer, kFile);
  EXPECT_EQ(c.clients[1].issuer, "");
  EXPECT_TRUE(c.clients[1].audiences.empty());
  EXPECT_EQ(c.clients[1].uids, (std::vector<uid_t>{0, 33}));
  EXPECT_TRUE(Refused(signer + "issuer = \"\"\n", "client[1].issuer", "issuer = \"\"", "must not be empty"));
  // Given anyway, they are read as ever.
  EXPECT_EQ(parse(signer + "issuer = \"urn:x\"\naudiences = [\"y\"]\n", kFile).clients[1].audiences,
            (std::vector<std::string>{"y"}));
}

// --- usage and rotation -----------------------------------------------------------------------------

// kValid with one more keyset, `lines` inside it.
std::string with_keyset(std::string_view lines) {
  return replaced(kValid, "[[client]]", "[[keyset]]\nname = \"tls\"\n" + std::string(lines) + "\n[[client]]");
}

TEST(Config, AKeysetIsAScheduledJwtKeysetByDefault) {
  const Config c = parse(kValid, kFile);
  EXPECT_EQ(c.keysets[0].usage, hsmsignd::config::Usage::jwt);
  EXPECT_EQ(c.keysets[0].rotation, hsmsignd::config::Rotation::scheduled);
  const Config explicit_ = parse(with_keyset("usage = \"jwt\"\nrotation = \"scheduled\""), kFile);
  EXPECT_EQ(explicit_.keysets[1].usage, hsmsignd::config::Usage::jwt);
}

TEST(Config, ReadsTlsKeysetsOfEveryDigestAlgorithm) {
  for (const auto& [text, algorithm] : {std::pair{"ES256", Algorithm::ES256}, {"ES384", Algorithm::ES384},
                                        {"RS256", Algorithm::RS256}, {"PS256", Algorithm::PS256}}) {
    const Config c = parse(with_keyset("algorithm = \"" + std::string(text) + "\"\nusage = \"tls\"\nrotation = \"manual\""), kFile);
    EXPECT_EQ(c.keysets[1].algorithm, algorithm) << text;
    EXPECT_EQ(c.keysets[1].usage, hsmsignd::config::Usage::tls) << text;
    EXPECT_EQ(c.keysets[1].rotation, hsmsignd::config::Rotation::manual) << text;
  }
  const Config rsa = parse(with_keyset("algorithm = \"RS256\"\nrsa_bits = 3072\nusage = \"tls\""), kFile);
  EXPECT_EQ(rsa.keysets[1].rsa_bits, 3072u);
  EXPECT_EQ(rsa.keysets[1].rotation, hsmsignd::config::Rotation::scheduled);
}

TEST(Config, RefusesAnUnknownUsageOrRotation) {
  EXPECT_TRUE(Refused(with_keyset("usage = \"x509\""), "keyset[1].usage", "x509", "unknown usage \"x509\""));
  EXPECT_TRUE(Refused(with_keyset("usage = \"tls\"\nrotation = \"never\""), "keyset[1].rotation", "never",
                      "unknown rotation \"never\""));
}

TEST(Config, RefusesAnEdDsaTlsKeyset) {
  EXPECT_TRUE(Refused(with_keyset("algorithm = \"EdDSA\"\nusage = \"tls\""), "keyset[1].usage", "usage = ",
                      "not EdDSA"));
}

TEST(Config, RefusesManualRotationOfAJwtKeyset) {
  EXPECT_TRUE(Refused(with_keyset("rotation = \"manual\""), "keyset[1].rotation", "manual", "needs usage = \"tls\""));
  EXPECT_TRUE(Refused(with_keyset("usage = \"jwt\"\nrotation = \"manual\""), "keyset[1].rotation", "manual",
                      "needs usage = \"tls\""));
}

TEST(Config, RefusesTimingKeysOnAManualKeyset) {
  for (const char* key : {"rotation_period", "prepublish", "retire_after"}) {
    const std::string line = std::string(key) + " = \"90d\"";
    EXPECT_TRUE(Refused(with_keyset("usage = \"tls\"\nrotation = \"manual\"\n" + line),
                        "keyset[1]." + std::string(key), line, "has no schedule"))
        << key;
  }
  // destroy_retired still says what a retirement does.
  EXPECT_FALSE(parse(with_keyset("usage = \"tls\"\nrotation = \"manual\"\ndestroy_retired = false"), kFile)
                   .keysets[1]
                   .destroy_retired);
}

TEST(Config, ATlsKeysetIsNotHeldToTheJwksTimingRules) {
  // prepublish shorter than jwks.max_age, retire_after shorter than max_ttl + max_age: refused for a jwt
  // keyset, whose keys verifiers find in the JWKS; a tls keyset is in no JWKS.
  const std::string timing = "prepublish = \"1m\"\nretire_after = \"1m\"\nrotation_period = \"1d\"";
  EXPECT_TRUE(Refused(with_keyset(timing), "keyset[1].prepublish", "prepublish = \"1m\"", "jwks.max_age"));
  const std::string tls = with_keyset("usage = \"tls\"\n" + timing);
  EXPECT_EQ(parse(replaced(tls, "keysets = [\"default\"]", "keysets = [\"default\", \"tls\"]"), kFile).keysets[1].prepublish,
            60s);
}

TEST(Config, AllowsOnlyShortLivedTokens) {
  EXPECT_TRUE(Refused(replaced(kValid, "max_ttl = \"15m\"", "max_ttl = \"16m\""), "client[0].max_ttl", "max_ttl",
                      "must be from 1s to 15m (short-lived tokens only), not 16m"));
  EXPECT_TRUE(Refused(replaced(kValid, "max_ttl = \"15m\"", "max_ttl = \"0s\""), "client[0].max_ttl", "max_ttl",
                      "not 0s"));
  EXPECT_TRUE(Refused(replaced(kValid, "default_ttl = \"5m\"", "default_ttl = \"901s\""), "client[0].default_ttl",
                      "default_ttl", "must be from 1s to max_ttl (15m), not 901s"));
  EXPECT_TRUE(Refused(replaced(kValid, "default_ttl = \"5m\"", "default_ttl = \"0s\""), "client[0].default_ttl",
                      "default_ttl", "not 0s"));
  // Left out, default_ttl follows a max_ttl shorter than its own default of 5m.
  const Config c = parse(replaced(replaced(kValid, "default_ttl = \"5m\"\n", ""), "max_ttl = \"15m\"", "max_ttl = \"2m\""),
                         kFile);
  EXPECT_EQ(c.clients[0].default_ttl, 2min);
  EXPECT_EQ(parse(replaced(kValid, "default_ttl = \"5m\"", "default_ttl = \"15m\""), kFile).clients[0].default_ttl, 15min);
}

TEST(Config, RefusesDuplicateOrEmptyClientNames) {
  const std::string two = std::string(kValid) + "\n[[client]]\nname = \"auth-service\" # again\nuids = [1]\n"
                                                "keysets = [\"default\"]\nissuer = \"x\"\naudiences = [\"y\"]\n";
  EXPECT_TRUE(Refused(two, "client[1].name", "# again", "already the name of client[0]"));
  EXPECT_TRUE(Refused(replaced(kValid, "name = \"auth-service\"", "name = \"\""), "client[0].name", "name = \"\"",
                      "required"));
}

TEST(Config, ReadsSubjectPatternsAndRefusesOnesThatMeanNothingOrEverything) {
  EXPECT_TRUE(parse(kValid, kFile).clients[0].subjects.empty());
  const Config c = parse(replaced(kValid, "max_ttl = ", "subjects = [\"user:*\", \"svc:billing\"]\nmax_ttl = "), kFile);
  EXPECT_EQ(c.clients[0].subjects, (std::vector<std::string>{"user:*", "svc:billing"}));
  const auto with = [](std::string_view value) {
    return replaced(kValid, "max_ttl = ", "subjects = " + std::string(value) + "\nmax_ttl = ");
  };
  EXPECT_TRUE(Refused(with("[]"), "client[0].subjects", "subjects", "leave subjects out to allow any subject"));
  EXPECT_TRUE(Refused(with("[\"user:*\", \"\"]"), "client[0].subjects[1]", "subjects", "must not be empty"));
  EXPECT_TRUE(Refused(with("[\"*\"]"), "client[0].subjects[0]", "subjects", "allows every subject"));
  EXPECT_TRUE(Refused(with("[\"user:*:admin\"]"), "client[0].subjects[0]", "subjects",
                      "a '*' may only end a pattern (\"user:*\"), not \"user:*:admin\""));
  EXPECT_TRUE(Refused(with("[\"**\"]"), "client[0].subjects[0]", "subjects", "may only end a pattern"));
  EXPECT_TRUE(Refused(with("\"user:*\""), "client[0].subjects", "subjects", "must be an array"));
  const std::string jws = replaced(with("[\"user:*\"]"), "operations = [\"jwt\"]", "operations = [\"jwt\", \"jws\"]");
  EXPECT_TRUE(Refused(jws, "client[0].subjects", "subjects", "needs operations = [\"jwt\"] alone"));
  // The same operation twice is still jwt alone.
  EXPECT_EQ(parse(replaced(with("[\"user:*\"]"), "operations = [\"jwt\"]", "operations = [\"jwt\", \"jwt\"]"), kFile)
                .clients[0].subjects.size(),
            1u);
}

TEST(Config, ReadsMaxRatePerSecondOrPerMinute) {
  EXPECT_FALSE(parse(kValid, kFile).clients[0].max_rate);
  const auto with = [](std::string_view value) {
    return replaced(kValid, "max_ttl = ", "max_rate = " + std::string(value) + "\nmax_ttl = ");
  };
  const auto per_second = parse(with("\"200/s\""), kFile).clients[0].max_rate;
  ASSERT_TRUE(per_second);
  EXPECT_EQ(per_second->count, 200u);
  EXPECT_EQ(per_second->per, 1s);
  const auto per_minute = parse(with("\"30/m\""), kFile).clients[0].max_rate;
  ASSERT_TRUE(per_minute);
  EXPECT_EQ(per_minute->count, 30u);
  EXPECT_EQ(per_minute->per, 60s);
  EXPECT_EQ(parse(with("\"1000000/s\""), kFile).clients[0].max_rate->count, 1000000u);
  EXPECT_EQ(parse(with("\"00000001/s\""), kFile).clients[0].max_rate->count, 1u);
}

TEST(Config, RefusesAMaxRateOfZeroOrWithoutAUnit) {
  const auto with = [](std::string_view value) {
    return replaced(kValid, "max_ttl = ", "max_rate = " + std::string(value) + "\nmax_ttl = ");
  };
  EXPECT_TRUE(Refused(with("\"0/s\""), "client[0].max_rate", "max_rate",
                      "a rate of zero would refuse every request; leave max_rate out for no limit"));
  EXPECT_TRUE(Refused(with("\"200\""), "client[0].max_rate", "max_rate", "the unit must be /s or /m (\"200\")"));
  EXPECT_TRUE(Refused(with("\"200/h\""), "client[0].max_rate", "max_rate", "the unit must be /s or /m"));
  EXPECT_TRUE(Refused(with("\"1000001/s\""), "client[0].max_rate", "max_rate", "at most 1000000"));
  EXPECT_TRUE(Refused(with("\"99999999999/s\""), "client[0].max_rate", "max_rate", "at most 1000000"));
  EXPECT_TRUE(Refused(with("\"99999999999999999999999/s\""), "client[0].max_rate", "max_rate", "at most 1000000"));
  for (const char* bad : {"\"/s\"", "\"-5/s\"", "\"1.5/s\"", "\" 200/s\"", "\"200 /s\""})
    EXPECT_TRUE(Refused(with(bad), "client[0].max_rate", "max_rate", "not a whole number of requests")) << bad;
  EXPECT_TRUE(Refused(with("200"), "client[0].max_rate", "max_rate", "must be a string"));
}

// --- durations ------------------------------------------------------------------------------------

TEST(Duration, ParsesDigitsFollowedByOneUnit) {
  EXPECT_EQ(parse_duration("90s"), Duration{90});
  EXPECT_EQ(parse_duration("15m"), Duration{900});
  EXPECT_EQ(parse_duration("1h"), Duration{3600});
  EXPECT_EQ(parse_duration("30d"), Duration{30 * 86400});
  EXPECT_EQ(parse_duration("0s"), Duration{0});
  EXPECT_EQ(parse_duration("007m"), Duration{420});
}

TEST(Duration, RefusesAnythingElse) {
  for (const char* text : {"", "5", "m", "-5m", "+5m", "5 m", " 5m", "5m ", "5min", "1.5h", "1h30m", "5M", "5w", "1e3s", "５m"})
    EXPECT_EQ(parse_duration(text), std::nullopt) << '"' << text << '"';
}

TEST(Duration, RefusesWhatOverflows) {
  EXPECT_EQ(parse_duration("9223372036854775807s"), Duration{9223372036854775807});
  EXPECT_EQ(parse_duration("9223372036854775808s"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999999999d"), std::nullopt);
  EXPECT_EQ(parse_duration("106751991167301d"), std::nullopt);  // fits as a count, not once multiplied
  EXPECT_EQ(parse_duration("153722867280912931m"), std::nullopt);
}

TEST(Duration, FormatsTheShortestExactSpelling) {
  EXPECT_EQ(format_duration(Duration{900}), "15m");
  EXPECT_EQ(format_duration(Duration{86400}), "1d");
  EXPECT_EQ(format_duration(Duration{3600}), "1h");
  EXPECT_EQ(format_duration(Duration{61}), "61s");
  EXPECT_EQ(format_duration(Duration{0}), "0s");
  for (const char* text : {"90s", "15m", "1h", "30d"}) EXPECT_EQ(format_duration(*parse_duration(text)), text);
}

// --- [revocation] and [verify] --------------------------------------------------------------------

std::string with_table(std::string_view table) { return std::string(kValid).insert(kValid.find("[audit]"), table); }

TEST(Config, RevocationDefaultsToTheEmbeddedStoreFailingClosed) {
  const Config c = parse(kValid, kFile);
  EXPECT_EQ(c.revocation.redis, "");
  EXPECT_EQ(c.revocation.fail_open_for, 0s);
  EXPECT_FALSE(c.revocation.status_list);
  EXPECT_EQ(c.verify.clock_tolerance, 10s);
}

TEST(Config, ReadsEveryRevocationAndVerifyKey) {
  const Config c = parse(with_table("[revocation]\nredis = \"unix:/run/redis/redis.sock\"\nredis_password_file = \"pw\"\n"
                                    "fail_open_for = \"30s\"\nstatus_list = true\nstatus_list_uri = \"https://a.example/sl\"\n"
                                    "status_list_ttl = \"2m\"\nstatus_list_window = \"30m\"\n\n[verify]\nclock_tolerance = \"0s\"\n\n"),
                         kFile);
  EXPECT_EQ(c.revocation.redis, "unix:/run/redis/redis.sock");
  EXPECT_EQ(c.revocation.redis_password_file, "/etc/hsmsignd/pw");
  EXPECT_EQ(c.revocation.fail_open_for, 30s);
  EXPECT_TRUE(c.revocation.status_list);
  EXPECT_EQ(c.revocation.status_list_uri, "https://a.example/sl");
  EXPECT_EQ(c.revocation.status_list_ttl, 120s);
  EXPECT_EQ(c.revocation.status_list_window, 1800s);
  EXPECT_EQ(c.verify.clock_tolerance, 0s);
}

TEST(Config, StatusListsAreServedByTheJwksListenerByDefault) {
  EXPECT_EQ(parse(with_table("[revocation]\nstatus_list = true\n\n"), kFile).revocation.status_list_uri,
            "http://127.0.0.1:8080/statuslists");
  EXPECT_TRUE(Refused(replaced(with_table("[revocation]\nstatus_list = true\n\n"), "listen = \"127.0.0.1:8080\"", "listen = \"\""),
                      "revocation", "[revocation]", "status_list needs the [jwks] listener"));
  EXPECT_TRUE(Refused(replaced(with_table("[revocation]\nstatus_list = true\nstatus_list_uri = \"https://a.example/sl\"\n\n"),
                               "listen = \"127.0.0.1:8080\"", "listen = \"\""),
                      "revocation", "[revocation]", "status_list needs the [jwks] listener"));
}

TEST(Config, RefusesBadRevocationValues) {
  for (const char* redis : {"redis://h:6379", "unix:relative", "tcp://host", "tcp://host:0", "tcp://host:70000", "tcp://:6379"})
    EXPECT_TRUE(Refused(with_table(std::string("[revocation]\nredis = \"") + redis + "\"\n\n"), "revocation.redis", "redis =",
                        "must be \"unix:/absolute/path\" or \"tcp://host:port\""))
        << redis;
  EXPECT_TRUE(Refused(with_table("[revocation]\nredis_password_file = \"pw\"\n\n"), "revocation.redis_password_file",
                      "redis_password_file", "only means something with redis"));
  EXPECT_TRUE(Refused(with_table("[revocation]\nfail_open_for = \"2h\"\n\n"), "revocation.fail_open_for", "fail_open_for",
                      "at most 1h"));
  EXPECT_TRUE(Refused(with_table("[revocation]\nstatus_list_uri = \"ftp://x/sl\"\n\n"), "revocation.status_list_uri",
                      "status_list_uri", "http(s) URI"));
  EXPECT_TRUE(Refused(with_table("[revocation]\nstatus_list_uri = \"https://x/sl/\"\n\n"), "revocation.status_list_uri",
                      "status_list_uri", "trailing"));
  EXPECT_TRUE(Refused(with_table("[verify]\nclock_tolerance = \"10m\"\n\n"), "verify.clock_tolerance", "clock_tolerance",
                      "at most 5m"));
  EXPECT_TRUE(Refused(with_table("[verify]\nleeway = \"10s\"\n\n"), "verify.leeway", "leeway", "unknown key in verify"));
}

TEST(Config, OnRedisRefusesIssuersWhoseKeysWouldCollide) {
  // hsmsignd:revoked:<iss>:<jti>: "https://auth.example.com" with jti "8443:x" is the other's jti "x".
  const std::string second = "\n[[client]]\nname = \"port\"\nusers = [\"root\"]\nkeysets = [\"default\"]\n"
                             "issuer = \"https://auth.example.com:8443\"\naudiences = [\"x\"]\n";
  EXPECT_NO_THROW(parse(std::string(kValid) + second, kFile));  // only verifiers of the Redis keys could be misled
  EXPECT_TRUE(Refused(with_table("[revocation]\nredis = \"unix:/run/redis.sock\"\n\n") + second, "revocation", "[revocation]",
                      "would share Redis keys"));
  const std::string distinct = "\n[[client]]\nname = \"other\"\nusers = [\"root\"]\nkeysets = [\"default\"]\n"
                               "issuer = \"https://auth.example.org\"\naudiences = [\"x\"]\n";
  EXPECT_NO_THROW(parse(with_table("[revocation]\nredis = \"unix:/run/redis.sock\"\n\n") + distinct, kFile));
}

}  // namespace
