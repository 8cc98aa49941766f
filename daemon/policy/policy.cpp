#include "policy/policy.h"

#include <algorithm>

namespace hsmsignd::policy {
namespace {

const char* operation_name(config::Operation op) {
  switch (op) {
    case config::Operation::jwt: return "jwt";
    case config::Operation::jws: return "jws";
    case config::Operation::sign: return "sign";
  }
  return "?";
}

template <class C, class V>
bool holds(const C& c, const V& v) {
  return std::find(c.begin(), c.end(), v) != c.end();
}

}  // namespace

const config::ClientConfig* find_client(const config::Config& config, const Peer& peer) {
  for (const auto& client : config.clients)
    if (holds(client.uids, peer.uid) || holds(client.gids, peer.gid)) return &client;
  return nullptr;
}

Expected<const config::KeysetConfig*, api::ApiError> choose_keyset(const config::Config& config,
                                                                   const config::ClientConfig& client,
                                                                   const std::optional<std::string>& name,
                                                                   config::Operation operation) {
  if (!holds(client.operations, operation))
    return api::ApiError::forbidden(std::string("client \"") + client.name + "\" may not use the " +
                                    operation_name(operation) + " operation");
  const std::string& wanted = name ? *name : client.keysets.front();
  if (!holds(client.keysets, wanted))
    return api::ApiError::forbidden("client \"" + client.name + "\" may not use keyset \"" + wanted + "\"");
  const config::KeysetConfig* keyset = config.keyset(wanted);
  if (keyset == nullptr) return api::ApiError::not_found("no keyset \"" + wanted + "\"");
  // Its keys are in no JWKS: a JWT or JWS they signed could be verified by no one, and a verifier that
  // trusted them would trust every digest the keyset's clients sign.
  if (keyset->usage == config::Usage::tls && operation != config::Operation::sign)
    return api::ApiError::forbidden("keyset \"" + wanted + "\" is a tls keyset: it signs digests through /v1/sign only, not " +
                                    (operation == config::Operation::jwt ? "JWTs" : "JWS payloads"));
  return keyset;
}

bool subject_allowed(const config::ClientConfig& client, std::string_view sub) {
  if (client.subjects.empty()) return true;
  return std::any_of(client.subjects.begin(), client.subjects.end(), [sub](std::string_view pattern) {
    return pattern.ends_with('*') ? sub.starts_with(pattern.substr(0, pattern.size() - 1)) : sub == pattern;
  });
}

Expected<JwtGrant, api::ApiError> grant_jwt(const config::Config& config, const config::ClientConfig& client,
                                            const api::JwtRequest& request) {
  auto keyset = choose_keyset(config, client, request.keyset, config::Operation::jwt);
  if (!keyset) return keyset.error();
  JwtGrant grant;
  grant.keyset = *keyset;
  grant.aud_is_array = request.aud_is_array;
  grant.aud = request.aud.empty() ? std::vector<std::string>{client.audiences.front()} : request.aud;
  for (const auto& a : grant.aud)
    if (!holds(client.audiences, a))
      return api::ApiError::forbidden("audience \"" + a + "\" is not allowed for client \"" + client.name + "\"");
  grant.ttl = request.ttl ? std::chrono::seconds(*request.ttl) : client.default_ttl;
  if (grant.ttl > client.max_ttl)
    return api::ApiError::bad_request("\"ttl\" " + std::to_string(grant.ttl.count()) + " exceeds the client's max_ttl of " +
                                      std::to_string(client.max_ttl.count()) + " s");
  return grant;
}

}  // namespace hsmsignd::policy
