#include "server/listeners.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/strand.hpp>
#include <stdexcept>

#include "log/log.h"

namespace hsmsignd::server {
namespace {

using local = asio::local::stream_protocol;

// A leftover socket file is stale when nobody accepts on it any more.
bool someone_listens(const std::filesystem::path& path) {
  asio::io_context io;
  local::socket probe(io);
  beast::error_code ec;
  probe.connect(local::endpoint(path.string()), ec);
  return !ec;
}

void prepare_socket_path(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path.string() + " exists and is not a socket");
  if (someone_listens(path)) throw std::runtime_error(path.string() + " is served by another running process");
  std::filesystem::remove(path);
  log::info("stale_socket_removed", {{"path", path.string()}});
}

template <class Protocol>
void start_session(typename Protocol::socket socket, Handler handler, const Limits& limits, InFlight& in_flight,
                   const std::shared_ptr<ConnectionSlots>& slots) {
  const bool room = slots->make_room();
  auto session =
      std::make_shared<HttpSession<Protocol>>(std::move(socket), std::move(handler), limits, in_flight, nullptr, slots);
  if (room)
    session->start();
  else
    session->refuse(api::ApiError::overloaded("too many connections, none of them idle", 1));
}

}  // namespace

policy::Peer peer_of(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return {static_cast<uid_t>(-1), static_cast<gid_t>(-1), 0};
  return {cred.uid, cred.gid, cred.pid};
}

UnixListener::UnixListener(asio::io_context& io, std::filesystem::path path, unsigned mode, PeerHandlerFactory factory,
                           const Limits& limits, InFlight& in_flight, std::optional<int> adopted)
    : acceptor_(io),
      path_(std::move(path)),
      owns_path_(!adopted),
      factory_(std::move(factory)),
      limits_(limits),
      in_flight_(in_flight),
      slots_(std::make_shared<ConnectionSlots>(limits.max_connections)) {
  if (adopted) {
    // systemd made it, with the unit's SocketMode= and SocketGroup=, and keeps it across our restarts.
    acceptor_.assign(local(), *adopted);
    return;
  }
  prepare_socket_path(path_);
  acceptor_.open(local());
  // No moment in which the socket exists with looser permissions than asked for.
  const mode_t old_umask = ::umask(0177);
  beast::error_code ec;
  acceptor_.bind(local::endpoint(path_.string()), ec);
  ::umask(old_umask);
  if (ec) throw std::runtime_error("cannot bind " + path_.string() + ": " + ec.message());
  if (::chmod(path_.c_str(), mode) != 0) throw std::runtime_error("cannot chmod " + path_.string());
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

UnixListener::~UnixListener() {
  close();
  std::error_code ignored;
  if (owns_path_) std::filesystem::remove(path_, ignored);
}

void UnixListener::start() { accept(); }

void UnixListener::close() {
  beast::error_code ignored;
  acceptor_.close(ignored);
}

void UnixListener::accept() {
  acceptor_.async_accept([this](beast::error_code ec, local::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      const policy::Peer peer = peer_of(socket.native_handle());  // before a byte of the request is read
      start_session<local>(std::move(socket), factory_(peer), limits_, in_flight_, slots_);
    } else {
      log::warning("accept_failed", {{"socket", path_.string()}, {"error", ec.message()}});
    }
    accept();
  });
}

TcpListener::TcpListener(asio::io_context& io, const std::string& host, unsigned short port, Handler handler,
                         const Limits& limits, InFlight& in_flight, std::optional<int> adopted)
    : acceptor_(io),
      handler_(std::move(handler)),
      limits_(limits),
      in_flight_(in_flight),
      slots_(std::make_shared<ConnectionSlots>(limits.max_connections)) {
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), port);
  if (adopted) {
    acceptor_.assign(endpoint.protocol(), *adopted);
    return;
  }
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  beast::error_code ec;
  acceptor_.bind(endpoint, ec);
  if (ec) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void TcpListener::start() { accept(); }

void TcpListener::close() {
  beast::error_code ignored;
  acceptor_.close(ignored);
}

void TcpListener::accept() {
  acceptor_.async_accept([this](beast::error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) start_session<asio::ip::tcp>(std::move(socket), handler_, limits_, in_flight_, slots_);
    accept();
  });
}

}  // namespace hsmsignd::server
