#include "audit/verify_chain.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "audit/chain.h"
#include "crypto/verify.h"
#include "jose/base64url.h"

namespace hsmsignd::audit {
namespace {

bool is_hex64(const nlohmann::json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

ChainReport verify_lines(const std::vector<std::string>& lines, const std::vector<std::string>& names,
                         const PublicKey& audit_key, const std::string& audit_kid) {
  ChainReport r;
  auto fail = [&](std::size_t i, std::uint64_t seq, const std::string& why) {
    r.ok = false;
    r.error = names[i] + ": seq " + std::to_string(seq) + ": " + why;
    return r;
  };
  std::uint64_t previous_seq = 0;
  std::uint64_t since_checkpoint = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i], nullptr, false);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("time") ||
        !j["time"].is_string() || !j.contains("event") || !j["event"].is_string() || !j.contains("prev") ||
        !is_hex64(j["prev"])) {
      r.ok = false;
      r.error = names[i] + ": not an audit record (seq, time, event and prev are required)";
      return r;
    }
    const std::uint64_t seq = j["seq"];
    const std::string& prev = j["prev"].get_ref<const std::string&>();
    if (i == 0) {
      r.first_seq = seq;
      if (seq == 1 && prev != kGenesis) return fail(i, seq, "the first line's prev must be 64 zeros");
    } else {
      if (seq != previous_seq + 1)
        return fail(i, seq, "follows seq " + std::to_string(previous_seq) + ": a line is missing, inserted or moved");
      if (prev != hex_sha256(lines[i - 1]))
        return fail(i - 1, previous_seq, "changed: its SHA-256 is not the prev of the line after it");
    }
    previous_seq = seq;
    ++r.lines;
    ++since_checkpoint;

    const std::string& event = j["event"].get_ref<const std::string&>();
    if (event == "checkpoint") {
      if (!j.contains("head") || j["head"] != j["prev"])
        return fail(i, seq, "checkpoint head is not the chain head");
      if (!j.contains("kid") || j["kid"] != audit_kid)
        return fail(i, seq, "checkpoint signed by another key than the audit key " + audit_kid);
      auto signature = j.contains("signature") && j["signature"].is_string()
                           ? jose::base64url_decode(j["signature"].get<std::string>())
                           : std::nullopt;
      const std::string message = checkpoint_message(seq, j["time"].get<std::string>(), prev);
      if (!signature || !crypto::verify(audit_key, as_bytes(message), *signature))
        return fail(i, seq, "checkpoint signature does not verify: the lines before it are not the ones signed");
      ++r.checkpoints;
      since_checkpoint = 0;
    } else if (event == "issue" || event == "sign") {
      if (j.contains("kid") && j["kid"].is_string()) ++r.signatures_by_kid[j["kid"].get<std::string>()];
      if (j.contains("client") && j["client"].is_string()) ++r.signatures_by_client[j["client"].get<std::string>()];
    }
  }
  r.uncovered = since_checkpoint;
  return r;
}

ChainReport verify_chain(const std::vector<std::filesystem::path>& files, const PublicKey& audit_key,
                         const std::string& audit_kid) {
  std::vector<std::string> lines, names;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      ChainReport r;
      r.ok = false;
      r.error = file.string() + ": cannot be read";
      return r;
    }
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      lines.push_back(line);
      names.push_back(file.string() + ":" + std::to_string(number));
    }
  }
  return verify_lines(lines, names, audit_key, audit_kid);
}

}  // namespace hsmsignd::audit
