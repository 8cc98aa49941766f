#include "audit/chain.h"

#include <algorithm>

#include "crypto/digest.h"

namespace hsmsignd::audit {

std::string hex_sha256(std::string_view line) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const Bytes hash = crypto::sha256(as_bytes(line));
  std::string out;
  out.reserve(64);
  for (auto b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::string checkpoint_message(std::uint64_t seq, const std::string& time, const std::string& head) {
  return "hsmsignd audit checkpoint\n" + std::to_string(seq) + "\n" + time + "\n" + head;
}

std::vector<std::filesystem::path> rotated_files(const std::filesystem::path& log_file) {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> found;
  std::error_code ec;
  const std::string prefix = log_file.filename().string() + ".";
  for (const auto& entry : std::filesystem::directory_iterator(log_file.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const std::string digits = name.substr(prefix.size());
    if (!digits.empty() && digits.size() < 20 && digits.find_first_not_of("0123456789") == std::string::npos)
      found.emplace_back(std::stoull(digits), entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::filesystem::path> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::filesystem::path public_key_path(const std::filesystem::path& log_file) {
  return log_file.string() + ".key.jwk";
}

}  // namespace hsmsignd::audit
