// One HTTP/1.1 connection, on a Unix or TCP socket: read a request (bounded in size and time), hand it
// to the handler, write the answer, and read the next one (keep-alive and pipelining). Handlers may
// answer from another thread; the answer is posted back to this connection's strand.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without including it

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <functional>
#include <memory>
#include <optional>

#include "api/api_error.h"
#include "api/http_types.h"
#include "log/log.h"
#include "server/connection_slots.h"
#include "server/limits.h"

namespace hsmsignd::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

using Handler = std::function<void(const api::HttpRequest&, api::Reply)>;

// Counts requests being handled, so a clean shutdown can wait for them.
struct InFlight {
  std::atomic<std::int64_t> requests{0};
  std::atomic<std::int64_t> connections{0};
};

template <class Protocol>
class HttpSession : public std::enable_shared_from_this<HttpSession<Protocol>> {
 public:
  using Socket = typename Protocol::socket;

  HttpSession(Socket socket, Handler handler, const Limits& limits, InFlight& in_flight,
              std::function<void()> on_close, std::shared_ptr<ConnectionSlots> slots = nullptr)
      : stream_(std::move(socket)),
        timer_(stream_.get_executor()),
        buffer_(limits.max_header + limits.max_body + 4096),
        handler_(std::move(handler)),
        limits_(limits),
        in_flight_(in_flight),
        on_close_(std::move(on_close)),
        slots_(std::move(slots)) {
    in_flight_.connections.fetch_add(1);
    if (slots_) slots_->opened();
  }
  ~HttpSession() {
    leave_idle();
    if (slots_) slots_->closed();
    in_flight_.connections.fetch_sub(1);
    if (on_close_) on_close_();
  }

  void start() { wait_for_request(); }

  // Answers one error and closes: for connections refused before any request (too many, say).
  void refuse(const api::ApiError& error) { fail(error); }

 private:
  // Idle keep-alive connections wait idle_timeout for a first byte; from then on the whole request
  // must arrive within request_timeout, so a client trickling bytes cannot hold the connection.
  void wait_for_request() {
    if (buffer_.size() > 0) return read_request();
    arm(limits_.idle_timeout);
    if (slots_) {
      // Until its first byte, this connection is what gives way when the listener is full.
      idle_ = slots_->idle([weak = this->weak_from_this()] {
        auto self = weak.lock();
        if (!self) return;
        self->idle_.reset();
        beast::error_code ignored;
        self->stream_.cancel(ignored);
      });
    }
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      self->leave_idle();
      self->disarm();
      if (ec) return self->close();  // idle timeout, or the peer left: nothing to answer
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  // The timer cancels the pending operation but leaves the socket open, so a late request can still be
  // told 408 before the connection closes. Arming only moves a deadline: the timer itself is re-armed
  // when the deadline comes earlier than its expiry or when it fires early, so a busy connection costs
  // no timer call per request.
  void arm(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    deadline_ = Clock::now() + timeout;
    if (!timer_waiting_ || deadline_ < timer_.expiry()) wait_for_deadline();
  }

  void disarm() { deadline_ = Clock::time_point::max(); }

  void wait_for_deadline() {
    timer_waiting_ = true;
    timer_.expires_at(deadline_);
    timer_.async_wait([weak = this->weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (!self || ec == asio::error::operation_aborted) return;  // re-armed or closed: that wait owns it
      self->timer_waiting_ = false;
      if (self->deadline_ == Clock::time_point::max()) return;
      if (Clock::now() < self->deadline_) return self->wait_for_deadline();
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.cancel(ignored);
    });
  }

  void leave_idle() {
    if (idle_) slots_->busy(*idle_);
    idle_.reset();
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(limits_.max_body);
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header));
    arm(limits_.request_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    disarm();
    keep_alive_ = false;
    head_only_ = false;  // an answer refusing this request has a body, whatever the previous one was
    if (timed_out_) return fail(api::ApiError::timeout("the request did not arrive in time"));
    if (ec == http::error::end_of_stream || ec == asio::error::eof) return close();
    if (ec == http::error::body_limit) return fail(api::ApiError::too_large("the body exceeds " + std::to_string(limits_.max_body) + " bytes"));
    if (ec == http::error::header_limit) return fail(api::ApiError::too_large("the header exceeds " + std::to_string(limits_.max_header) + " bytes"));
    if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe) return close();
    if (ec) return fail(api::ApiError::bad_request("malformed HTTP request: " + ec.message()));

    auto& req = parser_->get();
    // Beast checks header_limit only while the end of the header has not arrived; a header that came
    // whole in one read is measured here.
    if (header_size(req) > limits_.max_header)
      return fail(api::ApiError::too_large("the header exceeds " + std::to_string(limits_.max_header) + " bytes"));
    // Both framings at once is how requests are smuggled past a proxy: refuse, and close.
    if (req.find(http::field::content_length) != req.end() && req.find(http::field::transfer_encoding) != req.end())
      return fail(api::ApiError::bad_request("Content-Length together with Transfer-Encoding"));
    // Only "chunked", alone and in HTTP/1.1, frames a body we can read. Any other coding would leave the
    // body to be parsed as the next request (RFC 9112 §6.3: answer 400 and close).
    if (req.count(http::field::transfer_encoding) > 1 ||
        (req.find(http::field::transfer_encoding) != req.end() &&
         (!beast::iequals(req[http::field::transfer_encoding], "chunked") || !parser_->chunked() ||
          req.version() != 11)))
      return fail(api::ApiError::bad_request("Transfer-Encoding other than a single \"chunked\" in HTTP/1.1"));

    api::HttpRequest request;
    request.method = std::string(req.method_string());
    const auto target = req.target();
    request.target = std::string(target.substr(0, target.find('?')));
    request.body = std::move(req.body());
    if (auto it = req.find(http::field::if_none_match); it != req.end()) request.if_none_match = std::string(it->value());
    keep_alive_ = req.keep_alive();
    head_only_ = req.method() == http::verb::head;

    in_flight_.requests.fetch_add(1);
    answered_ = false;
    try {
      handler_(request, [self = this->shared_from_this()](api::HttpResponse response) {
        self->answered_ = true;
        asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
          self->in_flight_.requests.fetch_sub(1);
          self->write(std::move(response));
        });
      });
    } catch (const std::exception& e) {
      // A bug in a handler must cost this request, not the daemon and everyone else's requests.
      log::error("handler_failed", {{"target", request.target}, {"error", e.what()}});
      if (answered_) return;
      in_flight_.requests.fetch_sub(1);
      fail(api::ApiError::internal("internal error"));
    }
  }

  static std::size_t header_size(const http::request<http::string_body>& req) {
    std::size_t size = req.method_string().size() + req.target().size() + 12;  // request line
    for (const auto& field : req) size += field.name_string().size() + field.value().size() + 4;
    return size;
  }

  void fail(const api::ApiError& error) {
    keep_alive_ = false;
    linger_ = true;
    write(api::error_response(error));
  }

  // After an error the client may still be sending (a body over the limit, say). Closing at once would
  // make the kernel answer its data with a reset, which can destroy our answer before it is read: stop
  // sending, read and drop what still comes for a moment, then close.
  void linger_close() {
    beast::error_code ignored;
    stream_.shutdown(Socket::shutdown_send, ignored);
    arm(std::chrono::milliseconds(kLingerMs));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kMaxDrained) return self->close();
      self->drain();
    });
  }

  void write(api::HttpResponse r) {
    response_.emplace(static_cast<http::status>(r.status), 11);
    auto& res = *response_;
    if (!r.content_type.empty() && r.status != 304) res.set(http::field::content_type, r.content_type);
    if (!r.etag.empty()) res.set(http::field::etag, r.etag);
    res.set(http::field::cache_control, r.cache_control.empty() ? "no-store" : r.cache_control);
    if (r.retry_after > 0) res.set(http::field::retry_after, std::to_string(r.retry_after));
    if (!r.allow.empty()) res.set(http::field::allow, r.allow);
    if (!head_only_) res.body() = std::move(r.body);
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    if (head_only_) res.content_length(r.body.size());
    // A 304 may only carry the length of the 200 it stands for (RFC 9110 8.6), never 0.
    if (r.status == 304) res.erase(http::field::content_length);
    arm(limits_.request_timeout);  // a peer that reads nothing cannot hold the connection either
    http::async_write(stream_, res, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->disarm();
      self->response_.reset();
      if (!ec && self->linger_) return self->linger_close();
      if (ec || !self->keep_alive_) return self->close();
      self->wait_for_request();
    });
  }

  void close() {
    disarm();
    timer_.cancel();
    beast::error_code ignored;
    stream_.shutdown(Socket::shutdown_both, ignored);
    stream_.close(ignored);
  }

  Socket stream_;
  using Clock = asio::steady_timer::clock_type;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timer_waiting_ = false;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  Handler handler_;
  const Limits& limits_;
  InFlight& in_flight_;
  std::function<void()> on_close_;
  std::shared_ptr<ConnectionSlots> slots_;
  std::optional<ConnectionSlots::Idle> idle_;  // set while waiting idle for a request
  std::atomic<bool> answered_{false};  // the handler's reply may come from a signer thread
  bool keep_alive_ = false;
  bool head_only_ = false;
  bool linger_ = false;
  static constexpr int kLingerMs = 1000;
  static constexpr std::size_t kMaxDrained = 1 << 20;
  std::array<char, 4096> drain_buffer_{};
  std::size_t drained_ = 0;
};

}  // namespace hsmsignd::server
