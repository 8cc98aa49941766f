#include "config/accounts.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace hsmsignd::config {
namespace {

// The buffer for getpwnam_r/getgrnam_r: start at the size the system suggests and grow on ERANGE (a
// group with many members needs more), up to a bound so a broken NSS source cannot exhaust memory.
template <typename Entry, typename Lookup>
const Entry* look_up(const std::string& name, Entry& entry, std::vector<char>& buffer, long size_hint,
                     Lookup lookup, const char* what) {
  constexpr std::size_t kLargest = 1 << 20;
  buffer.resize(size_hint > 0 ? static_cast<std::size_t>(size_hint) : 16384);
  for (;;) {
    Entry* result = nullptr;
    const int error = lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &result);
    if (error == ERANGE && buffer.size() < kLargest) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    // POSIX lets "not found" come back as 0 with no result, or as ENOENT, ESRCH, EBADF or EPERM.
    if (error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM) return result;
    throw AccountLookupError{std::string("cannot look up ") + what + " " + name + ": " + std::strerror(error)};
  }
}

}  // namespace

std::optional<uid_t> find_user(const std::string& name) {
  passwd entry{};
  std::vector<char> buffer;
  const passwd* found = look_up(name, entry, buffer, sysconf(_SC_GETPW_R_SIZE_MAX), getpwnam_r, "user");
  if (!found) return std::nullopt;
  return found->pw_uid;
}

std::optional<gid_t> find_group(const std::string& name) {
  group entry{};
  std::vector<char> buffer;
  const group* found = look_up(name, entry, buffer, sysconf(_SC_GETGR_R_SIZE_MAX), getgrnam_r, "group");
  if (!found) return std::nullopt;
  return found->gr_gid;
}

}  // namespace hsmsignd::config
