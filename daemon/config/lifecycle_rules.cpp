#include "config/lifecycle_rules.h"

#include <algorithm>

namespace hsmsignd::config {
namespace {

std::string both_forms(Duration d) {
  const std::string human = format_duration(d);
  const std::string seconds = std::to_string(d.count()) + "s";
  return human == seconds ? human : human + " (" + seconds + ")";
}

// A verifier may hold the JWKS for max_age: a key must be in it that long before it signs.
void check_prepublish(const Section& keyset, const KeysetConfig& k, const JwksConfig& jwks) {
  if (k.prepublish < jwks.max_age)
    keyset.fail("prepublish", both_forms(k.prepublish) + " is shorter than jwks.max_age " + both_forms(jwks.max_age) +
                                  ": a verifier with a cached JWKS must see the new key before it signs");
}

// A token lives up to max_ttl after it is signed, and the verifier's copy of the JWKS may be max_age
// old: the key must stay published for both.
void check_retire_after(const Section& keyset, const KeysetConfig& k, const Config& config) {
  const ClientConfig* longest = nullptr;
  for (const ClientConfig& client : config.clients)
    if (std::find(client.keysets.begin(), client.keysets.end(), k.name) != client.keysets.end() &&
        (!longest || client.max_ttl > longest->max_ttl))
      longest = &client;

  const Duration needed = (longest ? longest->max_ttl : Duration::zero()) + config.jwks.max_age;
  if (k.retire_after >= needed) return;
  const std::string max_age = "jwks.max_age " + both_forms(config.jwks.max_age);
  const std::string bound = longest ? "the longest max_ttl of its clients, " + both_forms(longest->max_ttl) +
                                          " of client " + in_quotes(longest->name) + ", plus " + max_age + " = " +
                                          both_forms(needed)
                                    : max_age;
  keyset.fail("retire_after", both_forms(k.retire_after) + " is shorter than " + bound +
                                  ": a verifier could still hold a token whose key it can no longer find");
}

}  // namespace

void check_lifecycle(const Section& root, const Config& config) {
  const std::vector<Section> keysets = root.tables("keyset");
  for (std::size_t i = 0; i < config.keysets.size(); ++i) {
    // Both rules protect verifiers of JWTs that find keys in the JWKS; a tls keyset is never in it.
    if (config.keysets[i].usage == Usage::tls) continue;
    check_prepublish(keysets.at(i), config.keysets[i], config.jwks);
    check_retire_after(keysets.at(i), config.keysets[i], config);
  }
}

}  // namespace hsmsignd::config
