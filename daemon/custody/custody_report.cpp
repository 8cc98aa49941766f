#include "custody/custody_report.h"

#include "common/hex.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "audit/audit_key.h"
#include "audit/chain.h"
#include "common/rfc3339.h"
#include "jose/jwk.h"
#include "keyring/keyring.h"
#include "keyring/planner.h"
#include "keys.h"

namespace hsmsignd::custody {
namespace {

// The algorithm a key object can sign with when no keyset names it, or nullopt for a key type or curve
// hsmsignd has none for: the report says what the key is, never what a keyset would like it to be.
std::optional<Algorithm> natural_algorithm(const pkcs11::KeyObject& k) {
  for (Algorithm a : {Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA, Algorithm::RS256})
    if (pkcs11::fits(k, a)) return a;
  return std::nullopt;
}

// The keyset's algorithm for a key that fits it (RS256 and PS256 keys look alike), otherwise what the key is.
std::optional<Algorithm> algorithm_of(const pkcs11::KeyObject& k, const config::KeysetConfig* keyset) {
  if (keyset && pkcs11::fits(k, keyset->algorithm)) return keyset->algorithm;
  return natural_algorithm(k);
}

// Where the daemon puts a key object: scheduled (one of a keyset's keys), refused, or neither (a key
// of a keyset that is not configured, or not hsmsignd's).
struct Standing {
  std::optional<keyring::Schedule> schedule;
  std::optional<std::string_view> refused;
};

// The same selection and the same plan as the keyring's, so the report cannot disagree with the daemon.
std::map<Bytes, Standing> standings(const std::vector<pkcs11::KeyObject>& objects, const config::Config& config,
                                    keyring::TimePoint now) {
  std::map<Bytes, Standing> out;
  auto refuse = [&](const keyring::KeysetKeys& found) {
    for (const auto& r : found.refused) out[r.object->id].refused = r.reason;
  };
  for (const auto& keyset : config.keysets) {
    const auto found = keyring::keys_of(keyset.name, keyset.algorithm, objects, keyring::custody_policy(config));
    refuse(found);
    for (const auto& live : keyring::plan(keyset, found.records(), now).live) out[live.id].schedule = live.schedule;
  }
  // The audit key signs ES256 checkpoints; a key with its label that cannot do so is never used either.
  refuse(keyring::keys_of(audit::kAuditKeyset, Algorithm::ES256, objects, keyring::custody_policy(config)));
  return out;
}

nlohmann::ordered_json time_or_null(const std::optional<keyring::TimePoint>& t) {
  return t ? nlohmann::ordered_json(rfc3339(*t)) : nlohmann::ordered_json(nullptr);
}

// state, reason (refused keys only) and the lifecycle times.
void add_lifecycle(nlohmann::ordered_json& k, const std::optional<keyring::KeyLabel>& label, const Standing& standing) {
  std::optional<keyring::TimePoint> created, activates, deactivates, retires;
  if (standing.refused) {
    // Not one of the keyset's keys: its label is a claim the daemon does not act on (it is in "label").
    k["state"] = "refused";
    k["reason"] = std::string(*standing.refused);
  } else if (standing.schedule) {
    k["state"] = keyring::name(standing.schedule->state);
    created = label->created;
    activates = standing.schedule->activates;
    deactivates = keyring::unless_never(standing.schedule->deactivates);  // null: a manual keyset's key
    retires = keyring::unless_never(standing.schedule->retires);
  } else if (label) {
    // The audit key signs checkpoints for as long as it exists; a keyset key the schedule no longer
    // lists is retired (kept on the token because destroy_retired is off, or not yet destroyed).
    k["state"] = label->keyset == audit::kAuditKeyset && !label->retired ? "active" : "retired";
    created = label->created;
    activates = label->activates;
  } else {
    k["state"] = nullptr;  // not hsmsignd's key
  }
  k["created"] = time_or_null(created);
  k["activates"] = time_or_null(activates);
  k["deactivates"] = time_or_null(deactivates);
  k["retires"] = time_or_null(retires);
}

// Every line of the log and its rotated files, oldest first, whose event is one of `events` and that
// names a kid: fn(record, kid). The text is searched before it is parsed: most lines are other events.
template <class F>
void for_each_kid_record(const std::filesystem::path& log_file, std::initializer_list<std::string_view> events, F fn) {
  auto files = audit::rotated_files(log_file);
  files.push_back(log_file);
  for (const auto& path : files) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const bool wanted = std::any_of(events.begin(), events.end(), [&](std::string_view e) {
        return line.find("\"event\":\"" + std::string(e) + "\"") != std::string::npos;
      });
      if (!wanted) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("kid") && j["kid"].is_string()) fn(j, j["kid"].get<std::string>());
    }
  }
}

// Whether the token says the key was born in it. When it does not and the policy does not ask it to
// (require_local = false), "local" is null and "local_evidence" names the daemon's keygen audit line
// instead (null when the log has none for this kid: nothing but the key's attributes vouches for it).
void add_local(nlohmann::ordered_json& k, const pkcs11::KeyObject& o, const config::Config& config,
               const std::map<std::string, std::uint64_t>& keygens, const std::string& kid) {
  if (o.custody.local || config.token.require_local) {
    k["local"] = o.custody.local;
    return;
  }
  k["local"] = nullptr;
  auto line = kid.empty() ? keygens.end() : keygens.find(kid);
  k["local_evidence"] = line == keygens.end() ? nlohmann::ordered_json(nullptr)
                                              : nlohmann::ordered_json{{"keygen_audit_seq", line->second}};
}

}  // namespace

std::map<std::string, std::uint64_t> count_signatures(const std::filesystem::path& log_file) {
  std::map<std::string, std::uint64_t> out;
  for_each_kid_record(log_file, {"issue", "sign"}, [&](const auto&, const std::string& kid) { ++out[kid]; });
  return out;
}

std::map<std::string, std::uint64_t> keygen_lines(const std::filesystem::path& log_file) {
  std::map<std::string, std::uint64_t> out;
  for_each_kid_record(log_file, {"keygen"}, [&](const auto& j, const std::string& kid) {
    if (j.contains("seq") && j["seq"].is_number_unsigned()) out.emplace(kid, j["seq"].template get<std::uint64_t>());
  });
  return out;
}

pkcs11::Result<nlohmann::ordered_json> report(pkcs11::TokenOps& ops, const pkcs11::TokenInfo& token,
                                              const config::Config& config,
                                              const std::map<std::string, std::uint64_t>& signatures,
                                              keyring::TimePoint now) {
  auto objects = ops.list_keys();
  if (!objects) return objects.error();

  const auto standing = standings(*objects, config, now);
  // Read only when it can matter: a token that reports CKA_LOCAL, or a policy that requires it, needs none.
  const auto keygens = config.token.require_local ? std::map<std::string, std::uint64_t>{} : keygen_lines(config.audit.file);

  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const auto& o : *objects) {
    const auto label = keyring::KeyLabel::parse(o.label);
    const std::optional<Algorithm> alg = algorithm_of(o, label ? config.keyset(label->keyset) : nullptr);
    std::string kid;
    if (alg) {
      if (auto pub = ops.export_public_key(o.id, *alg)) kid = jose::thumbprint(*pub);
    }
    nlohmann::ordered_json k;
    k["kid"] = kid.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(kid);
    k["keyset"] = label ? nlohmann::ordered_json(label->keyset) : nlohmann::ordered_json(nullptr);
    k["label"] = o.label;
    k["id"] = hex(o.id);
    k["algorithm"] = alg ? nlohmann::ordered_json(std::string(name(*alg))) : nlohmann::ordered_json(nullptr);
    k["bits"] = o.bits;
    auto it = standing.find(o.id);
    add_lifecycle(k, label, it != standing.end() ? it->second : Standing{});
    add_local(k, o, config, keygens, kid);
    k["never_extractable"] = o.custody.never_extractable;
    k["always_sensitive"] = o.custody.always_sensitive;
    k["extractable"] = o.custody.extractable;
    k["sensitive"] = o.custody.sensitive;
    auto count = kid.empty() ? signatures.end() : signatures.find(kid);
    k["signatures"] = count == signatures.end() ? 0 : count->second;
    keys.push_back(std::move(k));
  }
  nlohmann::ordered_json out;
  out["token"] = {{"label", token.label}, {"serial", token.serial}, {"model", token.model},
                  {"manufacturer", token.manufacturer}};
  out["keys"] = std::move(keys);
  return out;
}

std::string table(const nlohmann::ordered_json& r) {
  auto text = [](const nlohmann::ordered_json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return std::string(v.get<bool>() ? "yes" : "NO");
    if (v.is_number()) return v.dump();
    return std::string("-");
  };
  std::string out = "token " + text(r["token"]["label"]) + "  serial " + text(r["token"]["serial"]) + "  model " +
                    text(r["token"]["model"]) + "  manufacturer " + text(r["token"]["manufacturer"]) + "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-44s %-10s %-6s %-9s %-21s %-5s %-5s %-5s %-5s %-5s %10s\n", "KID", "KEYSET",
                "ALG", "STATE", "ACTIVATES", "LOCAL", "NEVX", "ALWS", "EXTR", "SENS", "SIGNATURES");
  out += line;
  for (const auto& k : r["keys"]) {
    // Extractable is the one attribute that must read "no": show it inverted, so every good key reads yes.
    std::snprintf(line, sizeof line, "%-44s %-10s %-6s %-9s %-21s %-5s %-5s %-5s %-5s %-5s %10s\n",
                  text(k["kid"]).c_str(), text(k["keyset"]).c_str(), text(k["algorithm"]).c_str(),
                  text(k["state"]).c_str(), text(k["activates"]).c_str(), text(k["local"]).c_str(),
                  text(k["never_extractable"]).c_str(), text(k["always_sensitive"]).c_str(),
                  k["extractable"].get<bool>() ? "YES!" : "no", text(k["sensitive"]).c_str(),
                  text(k["signatures"]).c_str());
    out += line;
  }
  out += "\nLOCAL: generated in the token; NEVX: never extractable; ALWS: always sensitive; EXTR: extractable now;\n"
         "SENS: sensitive. A trustworthy key reads yes, yes, yes, no, yes.\n";
  // With require_local = false a token that does not set CKA_LOCAL shows "-" there: say what stands in for it.
  for (const auto& k : r["keys"])
    if (k["local"].is_null()) {
      out += "LOCAL -: the token does not report it (require_local = false); the evidence is the keygen line in\n"
             "the audit log (local_evidence.keygen_audit_seq in --json).\n";
      break;
    }
  return out;
}

}  // namespace hsmsignd::custody
