#include "policy/sign_grant.h"

#include "policy/policy.h"

namespace hsmsignd::policy {
namespace {

using api::ApiError;

std::string quote_name(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The key the request names, or the keyset's active one.
Expected<SignGrant, ApiError> choose_key(const config::Config& config, const config::ClientConfig& client,
                                         const keyring::View& view, const api::SignRequest& request) {
  SignGrant grant;
  if (!request.kid) {
    auto keyset = choose_keyset(config, client, request.keyset, config::Operation::sign);
    if (!keyset) return keyset.error();
    grant.keyset = *keyset;
    grant.key = view.active_key((*keyset)->name);
    if (grant.key == nullptr) return ApiError::unavailable("keyset " + quote_name((*keyset)->name) + " has no active key");
    return grant;
  }
  // The operation first: a client that may not sign learns nothing about which kids exist.
  if (auto allowed = choose_keyset(config, client, request.keyset, config::Operation::sign); !allowed)
    return allowed.error();
  const std::string& kid = *request.kid;
  grant.key = view.find(kid);
  if (grant.key == nullptr) return ApiError::not_found("no key has kid " + quote_name(kid) + ": unknown, or retired");
  if (request.keyset && *request.keyset != grant.key->keyset)
    return ApiError::bad_request("key " + quote_name(kid) + " belongs to keyset " + quote_name(grant.key->keyset) + ", not " +
                                 quote_name(*request.keyset));
  auto keyset = choose_keyset(config, client, grant.key->keyset, config::Operation::sign);
  if (!keyset) return keyset.error();
  grant.keyset = *keyset;
  const keyring::KeyState state = grant.key->schedule.state;
  if (state == keyring::KeyState::pending)
    return ApiError::bad_request("key " + quote_name(kid) + " is pending: it signs nothing before it is active");
  if (state != keyring::KeyState::active && grant.keyset->usage == config::Usage::jwt)
    return ApiError::bad_request("key " + quote_name(kid) + " is " + std::string(keyring::name(state)) +
                                 ": a jwt keyset signs with its active key only");
  return grant;
}

}  // namespace

Expected<SignGrant, ApiError> grant_sign(const config::Config& config, const config::ClientConfig& client,
                                         const keyring::View& view, const api::SignRequest& request) {
  auto grant = choose_key(config, client, view, request);
  if (!grant) return grant;
  const config::KeysetConfig& keyset = *grant->keyset;
  const Algorithm alg = keyset.algorithm;
  if (alg == Algorithm::EdDSA) return ApiError::bad_request("EdDSA signs whole messages; use /v1/jws");
  if (request.padding && key_type(alg) != KeyType::RSA)
    return ApiError::bad_request("\"padding\" is for RSA keys; keyset " + quote_name(keyset.name) + " signs " +
                                 std::string(name(alg)) + " with an EC key");
  const DigestScheme own = default_scheme(alg);
  grant->scheme = {request.hash.value_or(own.hash), request.padding.value_or(own.padding)};
  if (keyset.usage == config::Usage::jwt && grant->scheme != own)
    return ApiError::bad_request("keyset " + quote_name(keyset.name) + " signs " + std::string(name(alg)) + " digests only (" +
                                 std::string(name(own.hash)) +
                                 (key_type(alg) == KeyType::RSA ? ", " + std::string(name(own.padding)) : std::string()) +
                                 "); a tls keyset signs other hashes");
  const std::size_t size = hash_size(grant->scheme.hash);
  if (request.digest.size() != size)
    return ApiError::bad_request("a " + std::string(name(grant->scheme.hash)) + " digest is " + std::to_string(size) +
                                 " bytes, not " + std::to_string(request.digest.size()));
  return grant;
}

}  // namespace hsmsignd::policy
