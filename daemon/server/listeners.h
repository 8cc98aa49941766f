// The daemon's listening sockets: the issuer (and later admin) Unix sockets, whose peers the kernel
// identifies, and the read-only JWKS listener on loopback TCP.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without including it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "policy/policy.h"
#include "server/http_session.h"
#include "server/limits.h"

namespace hsmsignd::server {

// Gives the handler for one connection from `peer`, decided once, before any byte is read.
using PeerHandlerFactory = std::function<Handler(const policy::Peer& peer)>;

class UnixListener {
 public:
  // Binds `path` with `mode`. A socket file left by a crashed daemon is replaced; one that a live
  // process still accepts on, or a path that is no socket, is an error (thrown: this runs at start-up).
  // With `adopted` (a socket systemd bound for us), serves that one and leaves the file to systemd.
  UnixListener(asio::io_context& io, std::filesystem::path path, unsigned mode, PeerHandlerFactory factory,
               const Limits& limits, InFlight& in_flight, std::optional<int> adopted = std::nullopt);
  ~UnixListener();

  void start();
  void close();  // stops accepting; open connections go on
  const std::filesystem::path& path() const { return path_; }

 private:
  void accept();

  asio::local::stream_protocol::acceptor acceptor_;
  std::filesystem::path path_;
  bool owns_path_;
  PeerHandlerFactory factory_;
  const Limits& limits_;
  InFlight& in_flight_;
  std::shared_ptr<ConnectionSlots> slots_;  // this listener's cap: sessions keep it alive after close()
};

class TcpListener {
 public:
  TcpListener(asio::io_context& io, const std::string& host, unsigned short port, Handler handler,
              const Limits& limits, InFlight& in_flight, std::optional<int> adopted = std::nullopt);
  void start();
  void close();
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept();

  asio::ip::tcp::acceptor acceptor_;
  Handler handler_;
  const Limits& limits_;
  InFlight& in_flight_;
  std::shared_ptr<ConnectionSlots> slots_;
};

// The peer of a connected Unix socket, from SO_PEERCRED.
policy::Peer peer_of(int fd);

}  // namespace hsmsignd::server
