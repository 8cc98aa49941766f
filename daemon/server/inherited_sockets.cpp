#include "server/inherited_sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace hsmsignd::server {
namespace {

std::string describe(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "fd " + std::to_string(fd);
  if (address.ss_family == AF_UNIX) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(address);
    return "fd " + std::to_string(fd) + " (unix " + std::string(un.sun_path) + ")";
  }
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    port = ntohs(in.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    port = ntohs(in6.sin6_port);
  }
  return "fd " + std::to_string(fd) + " (tcp " + host + ":" + std::to_string(port) + ")";
}

bool same_tcp_address(int fd, const std::string& host, unsigned short port) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    if (ntohs(in.sin_port) != port) return false;
    ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
  } else if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (ntohs(in6.sin6_port) != port) return false;
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
  } else {
    return false;
  }
  return host == text;
}

}  // namespace

InheritedSockets InheritedSockets::take() {
  InheritedSockets sockets;
  const int n = ::sd_listen_fds(1);
  for (int i = 0; i < n; ++i) sockets.fds_.push_back(SD_LISTEN_FDS_START + i);
  return sockets;
}

InheritedSockets::InheritedSockets(InheritedSockets&& other) noexcept : fds_(std::exchange(other.fds_, {})) {}

InheritedSockets& InheritedSockets::operator=(InheritedSockets&& other) noexcept {
  if (this != &other) {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
    fds_ = std::exchange(other.fds_, {});
  }
  return *this;
}

InheritedSockets::~InheritedSockets() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

std::optional<int> InheritedSockets::adopt_unix(const std::filesystem::path& path) {
  for (int& fd : fds_) {
    if (fd >= 0 && ::sd_is_socket_unix(fd, SOCK_STREAM, 1, path.c_str(), 0) > 0) return std::exchange(fd, -1);
  }
  return std::nullopt;
}

std::optional<int> InheritedSockets::adopt_tcp(const std::string& host, unsigned short port) {
  for (int& fd : fds_) {
    if (fd >= 0 && ::sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, port) > 0 && same_tcp_address(fd, host, port))
      return std::exchange(fd, -1);
  }
  return std::nullopt;
}

std::vector<std::string> InheritedSockets::unclaimed() const {
  std::vector<std::string> out;
  for (int fd : fds_)
    if (fd >= 0) out.push_back(describe(fd));
  return out;
}

}  // namespace hsmsignd::server
