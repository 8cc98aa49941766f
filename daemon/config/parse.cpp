// The whole file: TOML syntax first, then each table, then the rules that join them.
#include <algorithm>
#include <system_error>

#include <toml++/toml.h>

#include "config/config.h"
#include "config/lifecycle_rules.h"
#include "config/section.h"
#include "config/sections.h"

namespace hsmsignd::config {
namespace {

std::filesystem::path absolute_or_throw(const std::filesystem::path& file) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(file, error);
  if (error) throw ConfigError(file, 0, "", "cannot make the path absolute: " + error.message());
  return absolute;
}

toml::table parse_toml(std::string_view text, const std::filesystem::path& file) {
  const std::string source = file.string();
  try {
    return toml::parse(text, std::string_view(source));
  } catch (const toml::parse_error& e) {
    throw ConfigError(file, e.source().begin.line, "", e.description());
  }
}

}  // namespace

Config parse(std::string_view text, const std::filesystem::path& file) {
  Config config;
  config.file = absolute_or_throw(file);
  const Origin origin{file, config.file.parent_path()};

  const toml::table document = parse_toml(text, file);
  const Section root(document, "", origin);
  root.allow_only({"token", "server", "jwks", "state", "audit", "revocation", "verify", "keyset",
                   "client"});

  config.token = read_token(root);
  config.server = read_server(root);
  config.jwks = read_jwks(root);
  config.state = read_state(root);
  config.audit = read_audit(root);
  config.revocation = read_revocation(root);
  config.verify = read_verify(root);
  if (config.revocation.status_list) {
    // The JWKS listener serves the lists (status_list_uri is what a proxy in front of it publishes).
    if (config.jwks.listen.empty())
      root.fail("revocation", "status_list needs the [jwks] listener, which serves the lists; it is off");
    if (config.revocation.status_list_uri.empty())
      config.revocation.status_list_uri = "http://" + config.jwks.listen + "/statuslists";
  }
  config.keysets = read_keysets(root);
  config.clients = read_clients(root, config.keysets);
  check_shared_issuers(root, config);
  check_lifecycle(root, config);
  return config;
}

const KeysetConfig* Config::keyset(std::string_view name) const {
  for (const KeysetConfig& k : keysets)
    if (k.name == name) return &k;
  return nullptr;
}

Duration Config::longest_ttl() const {
  Duration longest{0};
  for (const ClientConfig& c : clients) longest = std::max(longest, c.max_ttl);
  return longest;
}

}  // namespace hsmsignd::config
