// [revocation] and [verify]: where revoked tokens are kept, and how strictly tokens are checked.
#include <cstdlib>

#include "config/sections.h"
#include "revocation/redis_address.h"

namespace hsmsignd::config {
namespace {

constexpr Duration kLongestTolerance{300};

}  // namespace

RevocationConfig read_revocation(const Section& root) {
  RevocationConfig out;
  const std::optional<Section> revocation = root.table("revocation");
  if (!revocation) return out;
  revocation->allow_only({"redis", "redis_password_file", "fail_open_for", "status_list", "status_list_uri",
                           "status_list_ttl", "status_list_window"});
  if (std::optional<std::string> redis = revocation->string("redis")) {
    // The value is not quoted back: a password pasted into it must not reach a log.
    if (auto parsed = revocation::parse_redis_address(*redis); !parsed.address)
      revocation->fail("redis", "must be \"unix:/absolute/path\" or \"tcp://host:port\": " + parsed.error);
    out.redis = *redis;
  }
  if (std::optional<std::filesystem::path> file = revocation->path("redis_password_file")) {
    if (out.redis.empty()) revocation->fail("redis_password_file", "only means something with redis");
    out.redis_password_file = *file;
  } else if (const char* credentials = std::getenv("CREDENTIALS_DIRECTORY"); credentials && *credentials && !out.redis.empty()) {
    // Under systemd, LoadCredential=redis-password:... keeps the password out of files the user can read.
    const std::filesystem::path credential = std::filesystem::path(credentials) / "redis-password";
    if (std::filesystem::exists(credential)) out.redis_password_file = credential;
  }
  out.fail_open_for = revocation->duration("fail_open_for").value_or(out.fail_open_for);
  if (out.fail_open_for > Duration{3600}) revocation->fail("fail_open_for", "at most 1h: a longer window trusts a stale set");
  out.status_list = revocation->boolean("status_list").value_or(false);
  if (std::optional<std::string> uri = revocation->string("status_list_uri")) {
    if (!(uri->starts_with("https://") || uri->starts_with("http://")) || uri->ends_with("/") ||
        uri->find_first_of(" \t\"\\") != std::string::npos)
      revocation->fail("status_list_uri", "must be an http(s) URI without a trailing '/'");
    out.status_list_uri = *uri;
  }
  out.status_list_ttl = revocation->duration("status_list_ttl").value_or(out.status_list_ttl);
  if (out.status_list_ttl < Duration{1} || out.status_list_ttl > Duration{86400})
    revocation->fail("status_list_ttl", "must be from 1s to 1d");
  out.status_list_window = revocation->duration("status_list_window").value_or(out.status_list_window);
  if (out.status_list_window < Duration{60} || out.status_list_window > Duration{86400})
    revocation->fail("status_list_window", "must be from 1m to 1d");
  return out;
}

void check_shared_issuers(const Section& root, const Config& config) {
  if (config.revocation.redis.empty()) return;
  // hsmsignd:revoked:<iss>:<jti> cannot be split back: issuers "https://a" and "https://a:8443" would name
  // each other's tokens (jti "8443:x" of the one is jti "x" of the other) for verifiers reading the keys.
  for (const ClientConfig& a : config.clients)
    for (const ClientConfig& b : config.clients)
      if (a.issuer != b.issuer && b.issuer.starts_with(a.issuer + ":"))
        root.fail("revocation", "the issuers \"" + a.issuer + "\" (client \"" + a.name + "\") and \"" + b.issuer + "\" (client \"" +
                                    b.name + "\") would share Redis keys: one followed by ':' begins the other");
}

VerifyConfig read_verify(const Section& root) {
  VerifyConfig out;
  const std::optional<Section> verify = root.table("verify");
  if (!verify) return out;
  verify->allow_only({"clock_tolerance"});
  out.clock_tolerance = verify->duration("clock_tolerance").value_or(out.clock_tolerance);
  if (out.clock_tolerance > kLongestTolerance) verify->fail("clock_tolerance", "at most 5m");
  return out;
}

}  // namespace hsmsignd::config
