// The JWK Set as a file for verifiers (or a web server) that read it from disk: replaced atomically
// (write a temporary file, fsync, rename, fsync the folder), so a reader sees the old or the new set,
// never half of one.
#pragma once

#include <filesystem>
#include <string_view>
#include <system_error>

namespace hsmsignd::jwks {

// Returns an empty error_code on success.
std::error_code write_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace hsmsignd::jwks
