// [server]: the issuer and admin sockets.
#include <sys/un.h>

#include <utility>

#include "config/sections.h"

namespace hsmsignd::config {
namespace {

constexpr unsigned kOthersMask = 0007;

std::optional<unsigned> parse_octal_mode(std::string_view text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  unsigned mode = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 0777) return std::nullopt;  // no setuid, setgid or sticky bits on a socket
  return mode;
}

unsigned read_socket_mode(const Section& server, unsigned fallback) {
  const std::optional<std::string> text = server.string("socket_mode");
  if (!text) return fallback;
  const std::optional<unsigned> mode = parse_octal_mode(*text);
  if (!mode) server.fail("socket_mode", "must be octal permission bits from \"0000\" to \"0777\", not " + in_quotes(*text));
  if (*mode & kOthersMask)
    server.fail("socket_mode", in_quotes(*text) +
                                   " grants access to others: any local user could ask for signatures;"
                                   " give access through the group instead (e.g. \"0660\")");
  return *mode;
}

std::filesystem::path read_socket_path(const Section& server, std::string_view key, std::filesystem::path fallback) {
  std::filesystem::path path = server.path(key).value_or(std::move(fallback));
  // bind() cannot take a longer path: better to say so now than fail at start.
  if (path.native().size() >= sizeof(sockaddr_un::sun_path))
    server.fail(key, "longer than the " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                         " bytes a Unix socket path may have");
  return path;
}

Duration read_bounded(const Section& server, std::string_view key, Duration fallback, Duration most,
                      std::string_view range) {
  const std::optional<Duration> d = server.duration(key);
  if (!d) return fallback;
  if (*d < Duration{1} || *d > most) server.fail(key, "must be " + std::string(range) + ", not " + format_duration(*d));
  return *d;
}

}  // namespace

ServerConfig read_server(const Section& root) {
  ServerConfig out;
  const std::optional<Section> server = root.table("server");
  if (!server) return out;
  server->allow_only({"socket", "socket_mode", "admin_socket", "max_body", "request_timeout", "idle_timeout"});

  out.socket = read_socket_path(*server, "socket", out.socket);
  out.socket_mode = read_socket_mode(*server, out.socket_mode);
  out.admin_socket = read_socket_path(*server, "admin_socket", out.admin_socket);
  // The admin socket is owner-only; sharing its path with the issuer socket would open admin
  // operations to every issuer.
  if (out.admin_socket == out.socket)
    server->fail(server->has("admin_socket") ? "admin_socket" : "socket", "the issuer and admin sockets must be different files");
  out.max_body = static_cast<std::size_t>(server->integer("max_body", 1024, 16 * 1024 * 1024).value_or(out.max_body));
  out.request_timeout = read_bounded(*server, "request_timeout", out.request_timeout, Duration{300}, "1s to 5m");
  out.idle_timeout = read_bounded(*server, "idle_timeout", out.idle_timeout, Duration{3600}, "1s to 1h");
  return out;
}

}  // namespace hsmsignd::config
