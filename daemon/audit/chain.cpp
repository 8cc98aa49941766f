#include "audit/chain.h"

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

std::filesystem::path public_key_path(const std::filesystem::path& log_file) {
  return log_file.string() + ".key.jwk";
}

}  // namespace hsmsignd::audit
