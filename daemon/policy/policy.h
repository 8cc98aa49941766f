// Who may ask for what. The peer comes from the kernel (SO_PEERCRED), never from the request; the
// client's [[client]] entry decides keysets, operations, issuer, audiences and lifetimes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "api/requests.h"
#include "config/config.h"

namespace hsmsignd::policy {

struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

// The first [[client]] whose uids (users resolved at load) hold the peer's uid, or whose gids (groups
// resolved at load) hold its primary gid; nullptr when none does.
const config::ClientConfig* find_client(const config::Config& config, const Peer& peer);

// The keyset a request signs with: the one it names, which must be among the client's, or else the
// client's first. The client must be allowed `operation`.
Expected<const config::KeysetConfig*, api::ApiError> choose_keyset(const config::Config& config,
                                                                   const config::ClientConfig& client,
                                                                   const std::optional<std::string>& name,
                                                                   config::Operation operation);

// Whether `sub` is among the client's subjects (exact, or a pattern's prefix before its trailing '*');
// every sub is when the client lists none.
bool subject_allowed(const config::ClientConfig& client, std::string_view sub);

struct JwtGrant {
  const config::KeysetConfig* keyset = nullptr;
  std::vector<std::string> aud;
  bool aud_is_array = false;
  std::chrono::seconds ttl{0};
};

// Audience among the client's audiences (the first is the default), ttl within max_ttl (default_ttl
// when absent).
Expected<JwtGrant, api::ApiError> grant_jwt(const config::Config& config, const config::ClientConfig& client,
                                            const api::JwtRequest& request);

}  // namespace hsmsignd::policy
