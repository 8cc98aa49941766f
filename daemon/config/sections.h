// One reader per part of the file. Each refuses what is wrong inside its own table; rules that
// join tables live in lifecycle_rules.h. Internal to the config layer.
#pragma once

#include <vector>

#include "config/config.h"
#include "config/section.h"

namespace hsmsignd::config {

TokenConfig read_token(const Section& root);
ServerConfig read_server(const Section& root);
JwksConfig read_jwks(const Section& root);
StateConfig read_state(const Section& root);
AuditConfig read_audit(const Section& root);
RevocationConfig read_revocation(const Section& root);
VerifyConfig read_verify(const Section& root);
// Needs the clients: on Redis, no issuer may be another one's prefix followed by ':'.
void check_shared_issuers(const Section& root, const Config& config);
std::vector<KeysetConfig> read_keysets(const Section& root);
// Needs the keysets: a client may only name keysets that exist.
std::vector<ClientConfig> read_clients(const Section& root, const std::vector<KeysetConfig>& keysets);

}  // namespace hsmsignd::config
