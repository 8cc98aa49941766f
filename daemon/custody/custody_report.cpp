#include "custody/custody_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "audit/audit_key.h"
#include "audit/chain.h"
#include "common/rfc3339.h"
#include "jose/jwk.h"
#include "keyring/planner.h"
#include "keys.h"

namespace hsmsignd::custody {
namespace {

std::string hex(const Bytes& b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

// The algorithm a key object can sign with when no keyset names it.
std::optional<Algorithm> natural_algorithm(const pkcs11::KeyObject& k) {
  if (k.type == KeyType::EC) return k.bits == 384 ? Algorithm::ES384 : Algorithm::ES256;
  if (k.type == KeyType::OKP) return Algorithm::EdDSA;
  if (k.type == KeyType::RSA) return Algorithm::RS256;
  return std::nullopt;
}

void count_file(const std::filesystem::path& path, std::map<std::string, std::uint64_t>& out) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\":\"issue\"") == std::string::npos && line.find("\"event\":\"sign\"") == std::string::npos)
      continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("kid") && j["kid"].is_string()) ++out[j["kid"].get<std::string>()];
  }
}

}  // namespace

std::map<std::string, std::uint64_t> count_signatures(const std::filesystem::path& log_file) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& path : audit::rotated_files(log_file)) count_file(path, out);
  count_file(log_file, out);
  return out;
}

pkcs11::Result<nlohmann::ordered_json> report(pkcs11::SessionRef s, const pkcs11::TokenInfo& token,
                                              const config::Config& config,
                                              const std::map<std::string, std::uint64_t>& signatures,
                                              keyring::TimePoint now) {
  auto objects = pkcs11::list_keys(s);
  if (!objects) return objects.error();

  // The lifecycle of each configured keyset's keys, as the keyring computes it.
  std::map<Bytes, keyring::Schedule> schedules;
  for (const auto& keyset : config.keysets) {
    std::vector<keyring::KeyRecord> records;
    for (const auto& o : *objects)
      if (auto l = keyring::KeyLabel::parse(o.label); l && l->keyset == keyset.name) records.push_back({o.id, *l});
    for (const auto& live : keyring::plan(keyset, records, now).live) schedules[live.id] = live.schedule;
  }

  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const auto& o : *objects) {
    const auto label = keyring::KeyLabel::parse(o.label);
    const config::KeysetConfig* keyset = label ? config.keyset(label->keyset) : nullptr;
    const bool audit_key = label && label->keyset == audit::kAuditKeyset;
    std::optional<Algorithm> alg = keyset ? std::optional(keyset->algorithm) : natural_algorithm(o);
    std::string kid;
    if (alg) {
      if (auto pub = pkcs11::export_public_key(s, o, *alg)) kid = jose::thumbprint(*pub);
    }
    nlohmann::ordered_json k;
    k["kid"] = kid.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(kid);
    k["keyset"] = label ? nlohmann::ordered_json(label->keyset) : nlohmann::ordered_json(nullptr);
    k["label"] = o.label;
    k["id"] = hex(o.id);
    k["algorithm"] = alg ? nlohmann::ordered_json(std::string(name(*alg))) : nlohmann::ordered_json(nullptr);
    k["bits"] = o.bits;
    auto it = schedules.find(o.id);
    if (it != schedules.end()) {
      k["state"] = keyring::name(it->second.state);
      k["created"] = rfc3339(label->created);
      k["activates"] = rfc3339(it->second.activates);
      k["deactivates"] = rfc3339(it->second.deactivates);
      k["retires"] = rfc3339(it->second.retires);
    } else if (label) {
      // The audit key signs checkpoints for as long as it exists; a keyset key the schedule no longer
      // lists is retired (kept on the token because destroy_retired is off, or not yet destroyed).
      k["state"] = audit_key && !label->retired ? "active" : "retired";
      k["created"] = rfc3339(label->created);
      k["activates"] = rfc3339(label->activates);
      k["deactivates"] = nullptr;
      k["retires"] = nullptr;
    } else {
      k["state"] = nullptr;  // not hsmsignd's key
      for (const char* field : {"created", "activates", "deactivates", "retires"}) k[field] = nullptr;
    }
    k["local"] = o.custody.local;
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
  return out;
}

}  // namespace hsmsignd::custody
