// The custody report: every key object on the token with the attributes that show it was born there
// and can never leave, its place in the lifecycle, and how many signatures the audit log says it made.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "keyring/key_label.h"
#include "token.h"
#include "token_ops.h"

namespace hsmsignd::custody {

// Signatures per kid (issue and sign events) in the log and its rotated files (FILE.<seq>).
std::map<std::string, std::uint64_t> count_signatures(const std::filesystem::path& log_file);

// The seq of the keygen line of each kid the daemon generated, in the log and its rotated files.
std::map<std::string, std::uint64_t> keygen_lines(const std::filesystem::path& log_file);

// The contract's JSON shape: {"token": {...}, "keys": [...]}. With [token] require_local = false, a key
// whose CKA_LOCAL the token leaves false has "local": null and "local_evidence": {"keygen_audit_seq": N}
// (the line in config.audit.file that records its generation), or null when the log has no such line.
pkcs11::Result<nlohmann::ordered_json> report(pkcs11::TokenOps& token_ops, const pkcs11::TokenInfo& token,
                                              const config::Config& config,
                                              const std::map<std::string, std::uint64_t>& signatures,
                                              keyring::TimePoint now);

// The same as a table for people.
std::string table(const nlohmann::ordered_json& report);

}  // namespace hsmsignd::custody
