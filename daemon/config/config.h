// hsmsignd's configuration: the TOML file of the contract, read once at start-up into plain structs.
// Everything the file can get wrong is refused here, with the file, line and key, so the layers
// below can trust what they are given.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_error.h"
#include "config/duration.h"
#include "hsmsignd/algorithm.h"

namespace hsmsignd::config {

enum class VerifyPolicy { all, sampled };
enum class Operation { jwt, jws, sign };
// What a keyset's keys sign. JWT keys are published in the JWKS and verified as JWTs; TLS keys sign
// arbitrary digests (certificates, CSRs, handshakes) and are never published, so that a JWT verifier
// trusting the JWKS can never be made to trust a signature over a digest someone else chose.
enum class Usage { jwt, tls };
// scheduled: the clock drives each key from pending to retired. manual: nothing happens by the clock;
// an operator rotates (the new key signs at once) and retires (the old key signs until then).
enum class Rotation { scheduled, manual };

constexpr std::string_view name(Usage u) { return u == Usage::tls ? "tls" : "jwt"; }
constexpr std::string_view name(Rotation r) { return r == Rotation::manual ? "manual" : "scheduled"; }

struct TokenConfig {
  std::filesystem::path module;  // absolute: a relative dlopen() path would search the library path
  std::string label;             // exactly one of label and serial is set
  std::string serial;
  std::filesystem::path pin_file;  // never read here: the PKCS#11 layer reads and checks it
  // CK_C_INITIALIZE_ARGS.pReserved at every C_Initialize (NSS softoken's database); empty: NULL.
  std::string init_args;
  // Refuse keys whose CKA_LOCAL is false. false only for a token that never sets it (NSS softoken).
  bool require_local = true;
  unsigned signers = 0;   // signer processes; 0 until read: one per core
  unsigned sessions = 1;  // per signer process
  VerifyPolicy verify_signatures = VerifyPolicy::all;
};

struct ServerConfig {
  std::filesystem::path socket = "/run/hsmsignd/sign.sock";
  unsigned socket_mode = 0660;  // never grants anything to others
  std::filesystem::path admin_socket = "/run/hsmsignd/admin.sock";
  std::size_t max_body = 65536;
  Duration request_timeout{10};  // a started request must be complete within this: 408
  Duration idle_timeout{60};     // a keep-alive connection waiting longer for its next request is closed
};

struct JwksConfig {
  std::string listen = "127.0.0.1:8080";  // as written; "" means no HTTP listener
  std::string listen_host = "127.0.0.1";  // the IP literal alone, IPv6 without brackets; "" when off
  unsigned short listen_port = 8080;      // 0 when off
  std::filesystem::path file;             // empty = no JWKS file
  Duration max_age{300};
};

struct StateConfig {
  std::filesystem::path dir = "/var/lib/hsmsignd";
};

struct AuditConfig {
  std::filesystem::path file = "/var/log/hsmsignd/audit.jsonl";
  Duration checkpoint_every{300};
  std::uint64_t max_size = 0;  // bytes; the log is rotated when it grows past this (0: only on SIGHUP)
};

// Where revocations are kept: SQLite in the state folder, or a Redis that several daemons share.
struct RevocationConfig {
  std::string redis;                          // "unix:/path" or "tcp://host:port"; "" = SQLite
  std::filesystem::path redis_password_file;  // empty: no AUTH
  Duration fail_open_for{0};                  // how long verification may answer from the last known set
  bool status_list = false;                   // every JWT gets a Token Status List entry
  std::string status_list_uri;                // the lists' base URI; by default the JWKS listener's /statuslists
  Duration status_list_ttl{60};               // how long a verifier may cache a Status List Token
  Duration status_list_window{3600};          // a new list per keyset every window
};

struct VerifyConfig {
  Duration clock_tolerance{10};  // leeway for exp, nbf and iat
};

struct KeysetConfig {
  std::string name;
  Algorithm algorithm = Algorithm::ES256;
  unsigned rsa_bits = 2048;  // meaningful for RS256 and PS256 only
  Usage usage = Usage::jwt;
  Rotation rotation = Rotation::scheduled;  // manual only with usage tls
  // Scheduled rotation only: a manual keyset refuses them in the file and ignores these defaults.
  Duration rotation_period{30 * 86400};
  Duration prepublish{3600};
  Duration retire_after{86400};
  bool destroy_retired = true;
};

// A request rate: `count` requests per `per` (one second or one minute).
struct Rate {
  std::uint32_t count = 0;
  Duration per{1};
};

struct ClientConfig {
  std::string name;
  // A peer matches when its uid is in `uids` or its gid in `gids`. Names are resolved at load time
  // into those lists (and kept, for messages and the audit log).
  std::vector<std::string> users;
  std::vector<uid_t> uids;
  std::vector<std::string> groups;
  std::vector<gid_t> gids;
  std::vector<std::string> keysets;     // the first is the default
  std::vector<Operation> operations;    // never empty: ["jwt"] when the file says nothing
  std::string issuer;                   // empty only when operations lack "jwt"
  std::vector<std::string> audiences;   // the first is the default; empty only when operations lack "jwt"
  Duration max_ttl{900};
  Duration default_ttl{300};
  // The sub values it may ask for: exact, or a prefix ending in one '*'. Empty: any sub.
  std::vector<std::string> subjects;
  std::optional<Rate> max_rate;  // its signing requests; none: no limit
};

struct Config {
  std::filesystem::path file;  // absolute
  TokenConfig token;
  ServerConfig server;
  JwksConfig jwks;
  StateConfig state;
  AuditConfig audit;
  RevocationConfig revocation;
  VerifyConfig verify;
  std::vector<KeysetConfig> keysets;  // at least one
  std::vector<ClientConfig> clients;  // may be empty: a daemon that only publishes its JWKS

  // The keyset called `name`, or nullptr.
  const KeysetConfig* keyset(std::string_view name) const;
  // The longest max_ttl of any client (0 without clients): no token of this daemon lives longer.
  Duration longest_ttl() const;
};

// Reads and validates `file`. Throws ConfigError.
Config load(const std::filesystem::path& file);

// Validates `toml` as if read from `file`, which names the file in errors and whose folder is the base
// of relative paths. Throws ConfigError.
Config parse(std::string_view toml, const std::filesystem::path& file);

}  // namespace hsmsignd::config
