// The rules of the audit chain, shared by the writer and the verifier.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hsmsignd::audit {

// The `prev` of the very first line.
inline const std::string kGenesis(64, '0');

// Lowercase hex SHA-256 of a line's bytes, without its newline: the next line's `prev`.
std::string hex_sha256(std::string_view line);

// The bytes a checkpoint signs: the chain head (the SHA-256 of the line before the checkpoint) bound to
// the checkpoint's own position and time.
std::string checkpoint_message(std::uint64_t seq, const std::string& time, const std::string& head);

// The rotated files of a log, FILE.<first seq>, oldest first.
std::vector<std::filesystem::path> rotated_files(const std::filesystem::path& log_file);

// Where the audit public key is written for a log: FILE.key.jwk, so a copy can be checked offline.
std::filesystem::path public_key_path(const std::filesystem::path& log_file);

}  // namespace hsmsignd::audit
