// Which key signs a POST /v1/sign, and how: the key (named by kid, or the keyset's active one), the hash
// and, for RSA, the padding. Pure (a config, a client, a picture of the keyring and the request), so every
// refusal is tested without a token.
#pragma once

#include <memory>

#include "api/api_error.h"
#include "api/requests.h"
#include "config/config.h"
#include "digest_scheme.h"
#include "keyring/keyring.h"

namespace hsmsignd::policy {

struct SignGrant {
  const config::KeysetConfig* keyset = nullptr;
  const keyring::Key* key = nullptr;  // points into the view the grant was made from
  DigestScheme scheme;
};

// Rules, in order:
// - the client needs the sign operation, and the keyset (named, the kid's, or its first) among its keysets: 403;
// - a kid no published key has (unknown, or retired): 404; a keyset that is not the kid's: 400;
// - a pending key never signs; a jwt keyset signs with its active key only, a tls keyset also with a
//   retiring one (a certificate stays bound to its key across a manual rotation): 400;
// - EdDSA signs messages (/v1/jws), not digests; padding is for RSA keys; a jwt keyset signs its
//   algorithm's own hash and padding only (a JWT verifier trusts its keys): 400;
// - the digest is exactly its hash's size: 400.
// Without kid, a keyset without an active key: 503.
Expected<SignGrant, api::ApiError> grant_sign(const config::Config& config, const config::ClientConfig& client,
                                              const keyring::View& view, const api::SignRequest& request);

}  // namespace hsmsignd::policy
