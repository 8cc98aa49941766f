#include "unix_http.h"

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without including it

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace hsmsignd::ctl {

namespace asio = boost::asio;
namespace http = boost::beast::http;

Answer request(const std::filesystem::path& socket, const std::string& method, const std::string& target,
               const std::string& body) {
  asio::io_context io;
  asio::local::stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(asio::local::stream_protocol::endpoint(socket.string()), ec);
  if (ec) throw std::runtime_error("cannot connect to " + socket.string() + ": " + ec.message());

  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "localhost");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  http::write(s, req, ec);
  if (ec) throw std::runtime_error("writing to " + socket.string() + ": " + ec.message());

  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16 * 1024 * 1024);
  http::read(s, buffer, parser, ec);
  if (ec) throw std::runtime_error("reading from " + socket.string() + ": " + ec.message());
  return {static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

}  // namespace hsmsignd::ctl
