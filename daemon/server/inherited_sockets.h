// Listening sockets handed over by systemd (socket activation, sd_listen_fds). The daemon adopts the
// ones whose address matches its configuration and binds the others itself, so one configuration
// serves both a unit with hsmsignd.socket and a start by hand.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hsmsignd::server {

class InheritedSockets {
 public:
  // Takes the descriptors systemd passed (and clears LISTEN_FDS so no child inherits them).
  static InheritedSockets take();

  InheritedSockets(const InheritedSockets&) = delete;
  InheritedSockets& operator=(const InheritedSockets&) = delete;
  InheritedSockets(InheritedSockets&&) noexcept;
  InheritedSockets& operator=(InheritedSockets&&) noexcept;
  ~InheritedSockets();  // closes what nobody adopted

  // The listening stream socket bound to `path`, if systemd passed one; the caller then owns it.
  std::optional<int> adopt_unix(const std::filesystem::path& path);
  // The listening TCP socket bound to host:port, if systemd passed one.
  std::optional<int> adopt_tcp(const std::string& host, unsigned short port);

  // What was passed and matches no configured address, e.g. "fd 5 (unix /run/x.sock)": a unit and a
  // configuration that disagree, which start-up refuses rather than leave a socket nobody answers.
  std::vector<std::string> unclaimed() const;
  std::size_t count() const { return fds_.size(); }

 private:
  InheritedSockets() = default;
  std::vector<int> fds_;  // -1 once adopted
};

}  // namespace hsmsignd::server
