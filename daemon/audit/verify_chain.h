// Checks an audit log, or a sequence of rotated files in order: every line's `seq` follows the one
// before, every `prev` is the SHA-256 of the line before, every checkpoint's signature verifies with the
// audit key. An edit whose author recomputed every `prev` is caught by the next signed checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "hsmsignd/public_key.h"

namespace hsmsignd::audit {

struct ChainReport {
  bool ok = true;
  std::string error;  // "FILE:LINE: seq N: what is wrong", the first line that breaks the chain
  std::uint64_t lines = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t uncovered = 0;  // lines after the last checkpoint: chained, but not yet signed
  std::uint64_t first_seq = 0;  // a first file that does not start at seq 1 continues earlier files
  std::map<std::string, std::uint64_t> signatures_by_kid;     // issue and sign events
  std::map<std::string, std::uint64_t> signatures_by_client;
};

ChainReport verify_chain(const std::vector<std::filesystem::path>& files, const PublicKey& audit_key,
                         const std::string& audit_kid);

// The same over lines already in memory; `names[i]` names where lines[i] came from ("FILE:LINE").
ChainReport verify_lines(const std::vector<std::string>& lines, const std::vector<std::string>& names,
                         const PublicKey& audit_key, const std::string& audit_kid);

}  // namespace hsmsignd::audit
