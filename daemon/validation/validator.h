// The checks a JWT of this daemon must pass, in the order /v1/verify reports them: its form, its header
// (the algorithm must be the one of the key its kid names), its signature by a published key, then its
// claims. Revocation is asked afterwards by the caller, which holds the store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keyring/keyring.h"
#include "validation/reason.h"

namespace hsmsignd::validation {

struct Rules {
  // Whether a JWT of `iss` signed by a key of `keyset` can be the daemon's; empty: not checked.
  std::function<bool(const std::string& iss, const std::string& keyset)> issues{};
  std::optional<std::string> audience{};               // the aud the token must name; none: not checked
  std::int64_t now = 0;                                // unix seconds
  std::int64_t tolerance = 0;                          // seconds of leeway for exp, nbf and iat
  // false (revocation): only what names the token is required (iss, jti, exp), and no time is judged.
  bool full = true;
};

struct Claims {
  std::string iss, sub, jti;
  std::vector<std::string> aud;
  std::int64_t exp = 0, nbf = 0, iat = 0;
  std::string status_uri;        // its Token Status List entry, when status_idx >= 0
  std::int64_t status_idx = -1;
};

struct Verdict {
  Reason reason = Reason::valid;
  std::string message;        // for a person
  std::string alg;            // as the header gave it, cut to 32 characters
  nlohmann::json header;      // null until read
  nlohmann::json claims;      // null until the signature is checked: nothing unsigned is echoed
  Claims facts;               // set once the claims are checked
  std::shared_ptr<const keyring::View> view;
  const keyring::Key* key = nullptr;  // the key the kid names, inside `view`

  bool valid() const { return reason == Reason::valid; }
};

Verdict validate(std::string_view jwt, std::shared_ptr<const keyring::View> view, const Rules& rules);

}  // namespace hsmsignd::validation
