// A fixed configuration for the targets that go as far as the policy: parsed by the real loader from
// this text (no file, no token is touched). Two clients, three keysets of different algorithms.
#pragma once

#include "config/config.h"

namespace hsmsignd::fuzz {

inline constexpr const char* kTestConfig = R"(
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "fuzz"

[jwks]
listen = ""

[[keyset]]
name = "default"

[[keyset]]
name = "ed"
algorithm = "EdDSA"

[[keyset]]
name = "rsa"
algorithm = "RS256"

[[client]]
name = "issuer"
uids = [1000]
keysets = ["default", "ed", "rsa"]
operations = ["jwt", "jws", "sign"]
issuer = "https://issuer.example"
audiences = ["api-gateway", "billing"]
max_ttl = "10m"
default_ttl = "5m"

[[client]]
name = "narrow"
uids = [1001]
keysets = ["rsa"]
issuer = "https://narrow.example"
audiences = ["only"]
max_ttl = "1m"
)";

inline const config::Config& test_config() {
  static const config::Config config = config::parse(kTestConfig, "/nonexistent/fuzz.toml");
  return config;
}

}  // namespace hsmsignd::fuzz
