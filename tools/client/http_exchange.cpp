#include "http_exchange.h"

#include <cstdint>
#include <optional>
#include <string>

#include "errors.h"
#include "unix_connection.h"

namespace hsmsignd::client::detail {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

// Decimal digits only, and few enough not to overflow: nullopt otherwise.
std::optional<std::uint64_t> number(std::string_view s) {
  if (!all_digits(s) || s.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  return v;
}

// The method and target go into the request line as they are: anything that could end the line or the
// field early (a blank, CR, LF, another control byte) would let a caller's string inject headers.
bool valid_method(std::string_view m) {
  return !m.empty() && m.size() <= 32 &&
         m.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~") ==
             std::string_view::npos;
}
bool valid_target(std::string_view t) {
  if (t.empty() || t.front() != '/') return false;
  for (unsigned char c : t)
    if (c <= 0x20 || c == 0x7f) return false;
  return true;
}

std::string format_request(std::string_view method, std::string_view target, std::string_view body) {
  std::string r;
  r.reserve(128 + target.size() + body.size());
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  // One request per connection: the daemon closes after answering, and nothing is left to share.
  r.append("Host: localhost\r\nConnection: close\r\n");
  const bool has_body = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (!body.empty()) r.append("Content-Type: application/json\r\n");
  if (has_body) r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append("\r\n").append(body);
  return r;
}

struct Head {
  int status = 0;
  std::string content_type;
  std::chrono::seconds retry_after{0};
  std::optional<std::uint64_t> content_length;
  std::size_t size = 0;  // the status line and fields with the blank line that ends them
};

// Whether `buffer` can still be the start of an HTTP/1.x answer: lets a peer that speaks something else
// be told apart at once, rather than by waiting for a blank line that never comes.
bool could_be_http(std::string_view buffer) {
  constexpr std::string_view kStart = "HTTP/1.";
  const std::size_t n = std::min(buffer.size(), kStart.size());
  return buffer.substr(0, n) == kStart.substr(0, n);
}

Result<Head> parse_head(std::string_view text, const std::string& socket) {
  const auto bad = [&](const std::string& why) {
    return make_error(Error::Kind::protocol, "the answer from " + socket + " is not valid HTTP: " + why);
  };
  Head head;
  head.size = text.size();
  text.remove_suffix(4);  // the blank line
  std::size_t eol = text.find("\r\n");
  const std::string_view status_line = text.substr(0, eol);
  // "HTTP/1.1 200 OK": the version, a three-digit status and an optional reason.
  if (status_line.size() < 12 || (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ' ||
      !all_digits(status_line.substr(9, 3)) || (status_line.size() > 12 && status_line[12] != ' '))
    return bad("status line \"" + std::string(status_line.substr(0, 80)) + "\"");
  head.status = static_cast<int>(*number(status_line.substr(9, 3)));
  if (head.status < 100 || head.status > 599) return bad("status " + std::to_string(head.status));

  while (eol != std::string_view::npos) {
    text.remove_prefix(eol + 2);
    eol = text.find("\r\n");
    const std::string_view line = text.substr(0, eol);
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos || line.front() == ' ' || line.front() == '\t' ||
        line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
      return bad("header line \"" + std::string(line.substr(0, 80)) + "\"");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      const auto length = number(value);
      if (!length || (head.content_length && *head.content_length != *length))
        return bad("Content-Length \"" + std::string(value.substr(0, 40)) + "\"");
      head.content_length = length;
    } else if (iequals(name, "Transfer-Encoding")) {
      // The daemon never sends one (every answer has a Content-Length); reading a coding we do not
      // implement would misframe the body.
      return bad("Transfer-Encoding \"" + std::string(value.substr(0, 40)) + "\" (hsmsignd always sends Content-Length)");
    } else if (iequals(name, "Content-Type")) {
      head.content_type = value;
    } else if (iequals(name, "Retry-After")) {
      // Seconds only; the HTTP-date form says nothing we would act on differently, so it reads as absent.
      if (const auto s = number(value); s && *s <= 86400 * 366) head.retry_after = std::chrono::seconds(*s);
    }
  }
  return head;
}

bool without_body(int status, std::string_view method) {
  return method == "HEAD" || status == 204 || status == 304 || (status >= 100 && status < 200);
}

Result<Response> read_answer(UnixConnection& connection, std::string_view method, const Deadline& deadline) {
  const std::string& socket = connection.socket();
  std::string buffer;
  std::optional<Head> head;
  const auto answer = [&](std::string_view body) {
    return Response{head->status, head->content_type, std::string(body), head->retry_after};
  };
  for (;;) {
    if (!head) {
      if (!could_be_http(buffer))
        return make_error(Error::Kind::protocol, "the answer from " + socket + " is not HTTP (is it hsmsignd's socket?)");
      const std::size_t end = buffer.find("\r\n\r\n");
      if (end == std::string::npos && buffer.size() > kMaxHead)
        return make_error(Error::Kind::protocol, "the answer from " + socket + " has a header over " +
                                                     std::to_string(kMaxHead / 1024) + " KiB");
      if (end != std::string::npos) {
        auto parsed = parse_head(std::string_view(buffer).substr(0, end + 4), socket);
        if (!parsed) return parsed.error();
        if (parsed->status < 200) {
          // An interim answer (100 Continue): the real one follows it.
          buffer.erase(0, parsed->size);
          continue;
        }
        head = std::move(*parsed);
      }
    }
    if (head) {
      const std::string_view body = std::string_view(buffer).substr(head->size);
      if (without_body(head->status, method)) return answer({});
      if (head->content_length && *head->content_length > kMaxBody)
        return make_error(Error::Kind::protocol, "the answer from " + socket + " announces " +
                                                     std::to_string(*head->content_length) + " bytes, over the " +
                                                     std::to_string(kMaxBody >> 20) + " MiB limit");
      if (head->content_length && body.size() >= *head->content_length)
        return answer(body.substr(0, *head->content_length));
      if (!head->content_length && body.size() > kMaxBody)
        return make_error(Error::Kind::protocol, "the answer from " + socket + " is over the " +
                                                     std::to_string(kMaxBody >> 20) + " MiB limit");
    }
    auto got = connection.read_some(buffer, kReadChunk, deadline);
    if (!got) return got.error();
    if (*got > 0) continue;
    // The end of the stream: the body's end when no Content-Length framed it, else an answer cut short.
    if (head && !head->content_length) return answer(std::string_view(buffer).substr(head->size));
    return make_error(Error::Kind::io, buffer.empty()
                                           ? "the daemon at " + socket + " closed the connection without answering"
                                           : "the daemon at " + socket + " closed the connection before its answer was complete");
  }
}

}  // namespace

Result<Response> exchange(const Options& options, std::string_view method, std::string_view target,
                          std::string_view body) {
  if (!valid_method(method)) return make_error(Error::Kind::protocol, "not an HTTP method: \"" + std::string(method.substr(0, 40)) + "\"");
  if (!valid_target(target))
    return make_error(Error::Kind::protocol, "not a request target (a path starting with /, without blanks or control bytes): \"" +
                                                 std::string(target.substr(0, 80)) + "\"");
  const Deadline deadline(options.timeout);
  auto connection = UnixConnection::open(options.socket, deadline);
  if (!connection) return connection.error();
  const auto written = connection->write_all(format_request(method, target, body), deadline);
  // Read even when the write failed: a daemon may answer and close before reading a whole request (429
  // when it has too many connections), and that answer says more than our EPIPE.
  auto answer = read_answer(*connection, method, deadline);
  if (!answer && !written) return written.error();
  return answer;
}

}  // namespace hsmsignd::client::detail
