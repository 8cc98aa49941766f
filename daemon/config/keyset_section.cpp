// [[keyset]]: a named series of keys of one algorithm, and the timing of its rotation.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>

#include "config/sections.h"

namespace hsmsignd::config {
namespace {

constexpr std::string_view kAllowedAlgorithms = "ES256, ES384, RS256, PS256, EdDSA";

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

// [a-z0-9][a-z0-9_-]{0,31}: the name goes into key labels on the token and into file names.
bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 32 && name.front() != '_' && name.front() != '-' &&
         std::all_of(name.begin(), name.end(), is_name_char);
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

std::string read_name(const Section& keyset, const std::vector<KeysetConfig>& earlier) {
  const std::optional<std::string> name = keyset.string("name");
  if (!name) keyset.fail("name", "required");
  if (!is_valid_name(*name))
    keyset.fail("name", in_quotes(*name) + " is not a keyset name: 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit");
  // The audit key lives on the token beside the signing keys and is listed under this name.
  if (*name == "audit") keyset.fail("name", "\"audit\" is reserved for the key that signs audit checkpoints");
  for (std::size_t i = 0; i < earlier.size(); ++i)
    if (earlier[i].name == *name)
      keyset.fail("name", in_quotes(*name) + " is already the name of keyset[" + std::to_string(i) + "]");
  return *name;
}

Algorithm read_algorithm(const Section& keyset) {
  const std::optional<std::string> text = keyset.string("algorithm");
  if (!text) return Algorithm::ES256;
  if (const std::optional<Algorithm> algorithm = parse_algorithm(*text)) return *algorithm;
  // A shared secret would have to live outside the token and be given to every verifier.
  if (starts_with_ignoring_case(*text, "none") || starts_with_ignoring_case(*text, "HS"))
    keyset.fail("algorithm", in_quotes(*text) + " is refused: hsmsignd signs only with asymmetric algorithms (" +
                                 std::string(kAllowedAlgorithms) + ")");
  keyset.fail("algorithm", "unknown algorithm " + in_quotes(*text) + "; use one of " + std::string(kAllowedAlgorithms));
}

unsigned read_rsa_bits(const Section& keyset, Algorithm algorithm, unsigned fallback) {
  const std::optional<std::int64_t> bits =
      keyset.integer("rsa_bits", std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max());
  if (!bits) return fallback;
  // Said out loud rather than ignored: the operator may believe the setting does something.
  if (key_type(algorithm) != KeyType::RSA)
    keyset.fail("rsa_bits", "only RS256 and PS256 keys have a size; this keyset is " + std::string(name(algorithm)));
  if (*bits != 2048 && *bits != 3072 && *bits != 4096)
    keyset.fail("rsa_bits", "must be 2048, 3072 or 4096, not " + std::to_string(*bits));
  return static_cast<unsigned>(*bits);
}

Usage read_usage(const Section& keyset, Algorithm algorithm) {
  const std::optional<std::string> text = keyset.string("usage");
  if (!text || *text == "jwt") return Usage::jwt;
  if (*text != "tls") keyset.fail("usage", "unknown usage " + in_quotes(*text) + "; use \"jwt\" or \"tls\"");
  // X.509 and TLS sign a digest; Ed25519 signs whole messages, which /v1/sign never sees.
  if (algorithm == Algorithm::EdDSA)
    keyset.fail("usage", "a tls keyset signs digests: use ES256, ES384, RS256 or PS256, not EdDSA");
  return Usage::tls;
}

// The timing keys mean nothing to a manual keyset: said out loud, so the operator does not believe a
// key will rotate or retire by itself.
Rotation read_rotation(const Section& keyset, Usage usage) {
  const std::optional<std::string> text = keyset.string("rotation");
  if (!text || *text == "scheduled") return Rotation::scheduled;
  if (*text != "manual") keyset.fail("rotation", "unknown rotation " + in_quotes(*text) + "; use \"scheduled\" or \"manual\"");
  if (usage != Usage::tls)
    keyset.fail("rotation", "\"manual\" needs usage = \"tls\": JWT keys are prepublished and retired on a schedule "
                            "that verifiers' caches rely on");
  for (std::string_view timing : {"rotation_period", "prepublish", "retire_after"})
    if (keyset.has(timing))
      keyset.fail(timing, "a keyset with rotation = \"manual\" has no schedule: its keys change only by "
                          "hsmsignctl rotate and retire; remove this key");
  return Rotation::manual;
}

void check_timing(const Section& keyset, const KeysetConfig& k) {
  if (k.prepublish <= Duration::zero()) keyset.fail("prepublish", "must be longer than 0s");
  if (k.rotation_period <= k.prepublish)
    keyset.fail("rotation_period", format_duration(k.rotation_period) + " must be longer than prepublish (" +
                                       format_duration(k.prepublish) +
                                       "): the next key is generated and published that long before it signs");
  if (k.retire_after <= Duration::zero()) keyset.fail("retire_after", "must be longer than 0s");
}

KeysetConfig read_keyset(const Section& keyset, const std::vector<KeysetConfig>& earlier) {
  keyset.allow_only({"name", "algorithm", "rsa_bits", "usage", "rotation", "rotation_period", "prepublish",
                     "retire_after", "destroy_retired"});
  KeysetConfig out;
  out.name = read_name(keyset, earlier);
  out.algorithm = read_algorithm(keyset);
  out.rsa_bits = read_rsa_bits(keyset, out.algorithm, out.rsa_bits);
  out.usage = read_usage(keyset, out.algorithm);
  out.rotation = read_rotation(keyset, out.usage);
  out.rotation_period = keyset.duration("rotation_period").value_or(out.rotation_period);
  out.prepublish = keyset.duration("prepublish").value_or(out.prepublish);
  out.retire_after = keyset.duration("retire_after").value_or(out.retire_after);
  out.destroy_retired = keyset.boolean("destroy_retired").value_or(out.destroy_retired);
  check_timing(keyset, out);
  return out;
}

}  // namespace

std::vector<KeysetConfig> read_keysets(const Section& root) {
  std::vector<KeysetConfig> out;
  for (const Section& keyset : root.tables("keyset")) out.push_back(read_keyset(keyset, out));
  if (out.empty()) root.fail("keyset", "required: at least one [[keyset]], or there is nothing to sign with");
  return out;
}

}  // namespace hsmsignd::config
