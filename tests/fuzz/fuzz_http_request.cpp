// The request path of the daemon's HTTP server: the input is the byte stream a client sends on one
// connection. It goes through the daemon's own server::HttpSession (the template in
// server/http_session.h, with the same Beast parser settings, limits, header-size post-check and
// Content-Length + Transfer-Encoding refusal), over a connected pair of Unix sockets in-process; the
// client side writes the input, shuts down its sending half and reads every answer.
//
// The handler does what IssuerApi::handle does for a matching client, up to where a token is needed:
// method and route matching, parse_object, parse_{jwt,jws,sign}_request, the policy, and the header and
// claims that would be signed (request_checks.h). Read-only routes answer a stub, admin routes run
// parse_object on their body (AdminApi checks the members inline). IssuerApi::handle itself needs a
// keyring, a session pool and an audit log, and its route table is a private detail, so the routing
// here is a copy of its rules, kept short.
//
// Invariants:
//  - every answer is a complete HTTP/1.1 response; error answers have the documented JSON body;
//  - the handler's answers come first, in request order, and at most one answer from the server itself
//    (a refusal) follows, as the last one, with Connection: close;
//  - a client that sent everything and closed its half is never answered 408;
//  - the first request is framed as an independent Beast parser with the daemon's settings frames it:
//    a refused one (limits, malformed, both Content-Length and Transfer-Encoding, header over 8 KiB)
//    never reaches the handler and gets 413 or 400; an accepted one reaches the handler with the same
//    method, target (less the query) and body;
//  - the handler never sees a body over max_body or a target with a query;
//  - the connection and request counters are back to zero once the connection is gone.
#include <utility>  // before Boost.Asio 1.74

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "known_findings.h"
#include "request_checks.h"
#include "server/http_session.h"

namespace {

using namespace hsmsignd;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

// The marker on every answer the handler gives, to tell them from the server's own refusals.
constexpr const char* kHandlerEtag = "\"fuzz-handler\"";

const server::Limits& limits() {
  static const server::Limits l = [] {
    server::Limits l;  // max_body and max_header as the daemon's defaults (max_body = [server] max_body)
    // The input always arrives whole, then EOF: no timer should ever fire. Short, so one that does
    // shows up as a 408 at once instead of a hang.
    l.request_timeout = std::chrono::milliseconds(3000);
    l.idle_timeout = std::chrono::milliseconds(3000);
    return l;
  }();
  return l;
}

struct Seen {
  std::string method, target, body;
};

fuzz::Outcome route(const api::HttpRequest& request) {
  const auto& client = fuzz::test_config().clients.front();
  const auto& t = request.target;
  const bool post = request.method == "POST", get = request.method == "GET";
  auto error = [](const api::ApiError& e) { return fuzz::error_outcome(e); };
  if (t == "/v1/jwt" || t == "/v1/jws" || t == "/v1/sign") {
    if (!post) return error(api::ApiError::method_not_allowed(t + " takes POST"));
    const auto body = fuzz::checked_parse_object(request.body);
    if (!body) return error(body.error());
    if (t == "/v1/jwt") return fuzz::handle_jwt(*body, client);
    if (t == "/v1/jws") return fuzz::handle_jws(*body, client);
    return fuzz::handle_sign(*body, client);
  }
  if (t == "/v1/keys" || t == "/.well-known/jwks.json" || t == "/healthz" || t == "/metrics") {
    if (!get) return error(api::ApiError::method_not_allowed(t + " takes GET"));
    return {200, "{}"};
  }
  if (t == "/v1/admin/rotate" || t == "/v1/admin/retire" || t == "/v1/admin/destroy") {
    if (!post) return error(api::ApiError::method_not_allowed(t + " takes POST"));
    const auto body = fuzz::checked_parse_object(request.body);
    if (!body) return error(body.error());
    return {200, "{}"};
  }
  return error(api::ApiError::not_found("no route " + t));
}

// How the daemon's settings frame the first request of `input`, by a parser of our own.
struct FirstRequest {
  enum { complete, too_large, malformed } kind = malformed;
  // Content-Length with Transfer-Encoding, or any Transfer-Encoding but one "chunked" in HTTP/1.1: the
  // daemon refuses both (RFC 9112 §6.3), since either lets a body be read as the next request.
  bool refused_framing = false;
  std::size_t header_size = 0;  // as HttpSession::header_size counts it
  Seen seen;
};

FirstRequest frame_first(std::string_view input) {
  http::request_parser<http::string_body> p;
  p.eager(true);
  p.body_limit(limits().max_body);
  p.header_limit(static_cast<std::uint32_t>(limits().max_header));
  beast::error_code ec;
  std::size_t used = 0;
  for (;;) {
    const std::size_t n = p.put(asio::buffer(input.data() + used, input.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      if (used < input.size() && n > 0) continue;
      p.put_eof(ec);
      break;
    }
    if (ec || p.is_done() || n == 0) break;
  }
  FirstRequest f;
  if (ec == http::error::header_limit || ec == http::error::body_limit) {
    f.kind = FirstRequest::too_large;
    return f;
  }
  if (ec || !p.is_done()) return f;
  f.kind = FirstRequest::complete;
  const auto& req = p.get();
  const auto te = req.find(http::field::transfer_encoding);
  f.refused_framing = te != req.end() && (req.find(http::field::content_length) != req.end() ||
                                          req.count(http::field::transfer_encoding) > 1 ||
                                          !beast::iequals(te->value(), "chunked") || !p.chunked() || req.version() != 11);
  f.header_size = req.method_string().size() + req.target().size() + 12;
  for (const auto& field : req) f.header_size += field.name_string().size() + field.value().size() + 4;
  f.seen.method = std::string(req.method_string());
  const auto target = req.target();
  f.seen.target = std::string(target.substr(0, target.find('?')));
  f.seen.body = req.body();
  return f;
}

struct Answer {
  int status = 0;
  bool from_handler = false;
  bool close = false;
  bool bodiless = false;  // read as the answer to HEAD
  std::string body;
};

// Splits what the server wrote into responses. A response to HEAD has no body (Beast is told so).
std::vector<Answer> read_answers(const std::string& wire, const std::vector<Seen>& requests) {
  std::vector<Answer> answers;
  std::size_t used = 0;
  while (used < wire.size()) {
    const std::size_t index = answers.size();
    auto parse = [&](bool skip, http::response_parser<http::string_body>& p, beast::error_code& ec) {
      p.eager(true);
      p.body_limit(std::uint64_t{1} << 32);  // not boost::none: Beast 1.74 then refuses every body (len_ > none)
      p.skip(skip);
      return p.put(asio::buffer(wire.data() + used, wire.size() - used), ec);
    };
    const bool answers_head = index < requests.size() && requests[index].method == "HEAD";
    std::optional<http::response_parser<http::string_body>> parser(std::in_place);
    beast::error_code ec;
    std::size_t n = parse(answers_head, *parser, ec);
    // Finding 002: while it is tolerated, the refusal that follows a HEAD request may come without its body.
    if (!parser->is_done() && fuzz::kKnownStaleHeadOnRefusal && index == requests.size() && index > 0 &&
        requests[index - 1].method == "HEAD") {
      parser.emplace();
      ec = {};
      n = parse(true, *parser, ec);
    }
    auto& p = *parser;
    used += n;
    if ((!ec || ec == http::error::need_more) && !p.is_done()) {
      fuzz::fail(__FILE__, __LINE__, "complete responses",
                 "answer " + std::to_string(index + 1) + " is cut short" +
                     (p.is_header_done() ? " (header " + std::to_string(p.get().result_int()) + " received, body missing)" : "") +
                     "; the server wrote:\n" + wire);
    }
    FUZZ_CHECK(!ec && p.is_done(), "answer " + std::to_string(index + 1) + " is not HTTP: " + ec.message() + "\n" + wire);
    const auto& res = p.get();
    Answer a;
    a.status = res.result_int();
    a.from_handler = res[http::field::etag] == kHandlerEtag;
    a.close = !res.keep_alive();
    a.body = res.body();
    a.bodiless = p.skip();
    answers.push_back(std::move(a));
  }
  return answers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static asio::io_context io;
  const std::string_view input = fuzz::as_text(data, size);
  try {
    io.restart();
    local::socket server_end(io), client_end(io);
    asio::local::connect_pair(server_end, client_end);

    server::InFlight in_flight;
    std::vector<Seen> seen;
    bool closed = false;
    server::Handler handler = [&](const api::HttpRequest& request, api::Reply reply) {
      FUZZ_CHECK(!request.method.empty(), "a request without a method reached the handler");
      FUZZ_CHECK(request.target.find('?') == std::string::npos, "the handler saw a query string: " + request.target);
      FUZZ_CHECK(request.body.size() <= limits().max_body, "the handler saw a body over max_body");
      seen.push_back({request.method, request.target, request.body});
      const fuzz::Outcome outcome = route(request);
      api::HttpResponse response{outcome.status, outcome.body, "application/json", kHandlerEtag, {}};
      reply(std::move(response));
    };
    auto session = std::make_shared<server::HttpSession<local>>(std::move(server_end), handler, limits(), in_flight,
                                                                [&closed] { closed = true; });
    session->start();
    session.reset();

    std::string wire;
    asio::async_write(client_end, asio::buffer(input.data(), input.size()), [&](beast::error_code, std::size_t) {
      beast::error_code ignored;
      client_end.shutdown(local::socket::shutdown_send, ignored);
    });
    asio::async_read(client_end, asio::dynamic_buffer(wire), [](beast::error_code, std::size_t) {});
    io.run();

    FUZZ_CHECK(closed, "the session outlived its connection");
    FUZZ_CHECK(in_flight.connections.load() == 0 && in_flight.requests.load() == 0,
               "in-flight counters not back to zero: " + std::to_string(in_flight.connections.load()) + " connections, " +
                   std::to_string(in_flight.requests.load()) + " requests");

    const std::vector<Answer> answers = read_answers(wire, seen);
    std::size_t handled = 0, refusals = 0;
    for (std::size_t i = 0; i < answers.size(); ++i) {
      const Answer& a = answers[i];
      FUZZ_CHECK(a.status != 408, "answered 408 to a request that had arrived whole");
      if (a.status >= 400 && !a.bodiless) fuzz::check_error_body(a.status, a.body);
      if (a.from_handler) {
        FUZZ_CHECK(refusals == 0, "a handler answer after the server's refusal");
        ++handled;
      } else {
        ++refusals;
        FUZZ_CHECK(a.status == 400 || a.status == 413, "the server refused with " + std::to_string(a.status));
        FUZZ_CHECK(a.close, "the server's refusal keeps the connection open");
        FUZZ_CHECK(i + 1 == answers.size(), "an answer after the server's refusal");
      }
    }
    FUZZ_CHECK(handled == seen.size(), "handled " + std::to_string(seen.size()) + " requests but " +
                                           std::to_string(handled) + " answers came back");

    // The first request, framed independently.
    const FirstRequest first = frame_first(input);
    if (input.empty()) {
      FUZZ_CHECK(answers.empty(), "an answer to nothing");
    } else if (first.kind == FirstRequest::complete && !first.refused_framing && first.header_size <= limits().max_header) {
      FUZZ_CHECK(!seen.empty(), "a well-formed first request never reached the handler");
      FUZZ_CHECK(seen[0].method == first.seen.method && seen[0].target == first.seen.target && seen[0].body == first.seen.body,
                 "the first request reached the handler as another one: " + seen[0].method + " " + seen[0].target + " vs " +
                     first.seen.method + " " + first.seen.target);
    } else if (first.kind == FirstRequest::complete && first.header_size <= limits().max_header) {
      // A framing that could smuggle: refused, whatever else the request holds.
      FUZZ_CHECK(seen.empty(), "a request with a smuggling framing reached the handler");
      FUZZ_CHECK(answers.size() == 1 && answers[0].status == 400 && !answers[0].from_handler,
                 "a smuggling framing not refused with one 400");
    } else if (first.kind == FirstRequest::complete) {
      // A header over max_header (measured as the daemon measures it) that Beast let through whole.
      FUZZ_CHECK(seen.empty(), "a request whose header is over the limit reached the handler");
      FUZZ_CHECK(answers.size() == 1 && (answers[0].status == 413 || (first.refused_framing && answers[0].status == 400)),
                 "a header over the limit not refused with one 413");
    } else {
      // Over a limit, not HTTP, or cut short by EOF: never handled; one 400 or 413, or silence (a stream
      // that ends before a request starts is a plain close). Which of 400 and 413 depends on how the
      // bytes arrive: Beast reports an unterminated header as header_limit when it has all of it at once
      // and as partial_message when it came in pieces.
      FUZZ_CHECK(seen.empty(), "a refused first request reached the handler as " + seen[0].method + " " + seen[0].target);
      FUZZ_CHECK(answers.size() <= 1, "a refused first request got " + std::to_string(answers.size()) + " answers");
      if (!answers.empty())
        FUZZ_CHECK(answers[0].status == 400 || answers[0].status == 413,
                   "a refused first request answered " + std::to_string(answers[0].status));
    }
  } catch (const std::exception& e) {
    fuzz::fail(__FILE__, __LINE__, "no exception", std::string("exception escaped: ") + e.what());
  } catch (...) {
    fuzz::fail(__FILE__, __LINE__, "no exception", "a non-standard exception escaped");
  }
  return 0;
}
