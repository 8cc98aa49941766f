// Reading the configuration file, bounded, before any of it is parsed.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "config/config.h"

namespace hsmsignd::config {
namespace {

// Far above any real configuration; a larger file is the wrong file.
constexpr std::size_t kLargestFile = 1 << 20;

std::string read_bounded(const std::filesystem::path& file) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) {
    if (error) throw ConfigError(file, 0, "", "cannot read: " + error.message());
    throw ConfigError(file, 0, "", "not a regular file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file, 0, "", std::string("cannot open: ") + std::strerror(errno));
  std::string text(kLargestFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) throw ConfigError(file, 0, "", "cannot read");
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kLargestFile) throw ConfigError(file, 0, "", "larger than 1 MiB: not a configuration file");
  return text;
}

}  // namespace

Config load(const std::filesystem::path& file) { return parse(read_bounded(file), file); }

}  // namespace hsmsignd::config
