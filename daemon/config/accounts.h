// User and group names to ids, through NSS, as the kernel will report the peer of a socket.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace hsmsignd::config {

// The lookup itself failed (NSS unreachable, say): not the same as "no such name".
struct AccountLookupError {
  std::string message;
};

// nullopt when there is no such user or group. Throws AccountLookupError when the answer is unknown.
std::optional<uid_t> find_user(const std::string& name);
std::optional<gid_t> find_group(const std::string& name);

}  // namespace hsmsignd::config
