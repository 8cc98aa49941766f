// The issuer client library against a canned AF_UNIX server in the test: its HTTP and JSON parsing, its
// deadline, and how it fails (each failure must be an Error of the documented kind, never a throw, a
// hang or a signal). The library against the real daemon is covered by the e2e tests of hsmsignctl,
// which is built on it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "hsmsignd/client.h"
#include "test_support.h"

namespace hsmsignd::client {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Kind = Error::Kind;

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the client went away: what a test of the client expects at times
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string answer(int status, std::string_view body, std::string_view extra_headers = {}) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra_headers) + "Connection: close\r\n\r\n" + std::string(body);
}

// A server on a socket in a fresh folder, one connection at a time on its own thread. `respond` gets the
// connection and the request (read whole, unless the server was told not to read it).
class CannedServer {
 public:
  using Respond = std::function<void(int fd, const std::string& request)>;

  explicit CannedServer(Respond respond, bool read_request = true)
      : respond_(std::move(respond)), read_request_(read_request), socket_((dir_.path() / "sign.sock").string()) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socket_.copy(address.sun_path, sizeof address.sun_path - 1);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener_, 64) != 0)
      throw std::runtime_error("cannot listen on " + socket_);
    thread_ = std::thread([this] { serve(); });
  }
  ~CannedServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listener_);
  }

  const std::string& socket() const { return socket_; }
  Options options(std::chrono::milliseconds timeout = 5s) const { return {socket_, timeout}; }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // The body of the only request so far, as JSON.
  json body() const {
    const auto all = requests();
    if (all.size() != 1) return json("not one request");
    return json::parse(all[0].substr(all[0].find("\r\n\r\n") + 4), nullptr, false);
  }

 private:
  void serve() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      const timeval limit{5, 0};  // a test that goes wrong must not hang the server
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      const std::string request = read_request_ ? read_whole_request(fd) : std::string();
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      respond_(fd, request);
      ::close(fd);
    }
  }
  static std::string read_whole_request(int fd) {
    std::string r;
    char buffer[4096];
    for (;;) {
      const auto end = r.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto cl = r.find("Content-Length: ");
        const std::size_t length = cl == std::string::npos || cl > end ? 0 : std::stoul(r.substr(cl + 16));
        if (r.size() >= end + 4 + length) return r;
      }
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return r;
      r.append(buffer, static_cast<std::size_t>(n));
    }
  }

  test::TempDir dir_;
  Respond respond_;
  bool read_request_;
  std::string socket_;
  int listener_ = -1;
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

CannedServer::Respond replies(std::string canned) {
  return [canned](int fd, const std::string&) { send_all(fd, canned); };
}

// Holds the connection open, answering nothing, until the client closes it.
void never_answer(int fd, const std::string&) {
  char byte;
  while (::recv(fd, &byte, 1, 0) > 0) {
  }
}

// GCC 12 warns (-Wmissing-field-initializers) about designated initializers that leave members out.
JwtRequest for_sub(std::string sub) {
  JwtRequest r;
  r.sub = std::move(sub);
  return r;
}
SignRequest for_digest(Bytes digest) {
  SignRequest r;
  r.digest = std::move(digest);
  return r;
}

const std::string kJwtAnswer = R"({"alg":"ES256","exp":1796167831,"iat":1796167531,"jti":"q67yXCLpxacFyq54Uc_D3g",)"
                               R"("jwt":"eyJ.eyJ.sig","kid":"-0Sy"})";

// --- the typed calls -----------------------------------------------------------------------------

TEST(ClientTest, IssueJwtSendsTheDocumentedMembersAndReadsTheAnswer) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  JwtRequest request = for_sub("alice");
  request.aud = {"api-gateway"};
  request.ttl = 300;
  request.keyset = "es";
  request.typ = "at+jwt";
  request.claims_json = R"({"role":"admin","tenant":{"id":7}})";
  const auto token = Client(server.options()).issue_jwt(request);
  ASSERT_TRUE(token) << token.error().what();
  EXPECT_EQ(token->jwt, "eyJ.eyJ.sig");
  EXPECT_EQ(token->alg, "ES256");
  EXPECT_EQ(token->kid, "-0Sy");
  EXPECT_EQ(token->jti, "q67yXCLpxacFyq54Uc_D3g");
  EXPECT_EQ(token->iat, 1796167531);
  EXPECT_EQ(token->exp, 1796167831);
  // One audience goes as a string (the token keeps the form asked for); claims as an object.
  EXPECT_EQ(server.body(), json::parse(R"({"sub":"alice","aud":"api-gateway","ttl":300,"keyset":"es","typ":"at+jwt",
                                           "claims":{"role":"admin","tenant":{"id":7}}})"));
  const std::string sent = server.requests().at(0);
  EXPECT_TRUE(sent.starts_with("POST /v1/jwt HTTP/1.1\r\n")) << sent;
  EXPECT_NE(sent.find("\r\nConnection: close\r\n"), std::string::npos) << sent;
}

TEST(ClientTest, IssueJwtSendsSeveralAudiencesAsAnArrayAndLeavesDefaultsOut) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  JwtRequest request = for_sub("bob");
  request.aud = {"api-gateway", "billing"};
  ASSERT_TRUE(Client(server.options()).issue_jwt(request));
  EXPECT_EQ(server.body(), json::parse(R"({"sub":"bob","aud":["api-gateway","billing"]})"));
}

TEST(ClientTest, ClaimsThatAreNotAJsonObjectAreRefusedBeforeConnecting) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  for (const char* claims : {"[1]", "{", "\"role\"", "{} {}"}) {
    JwtRequest request = for_sub("alice");
    request.claims_json = claims;
    const auto token = Client(server.options()).issue_jwt(request);
    ASSERT_FALSE(token) << claims;
    EXPECT_EQ(token.error().kind, Kind::protocol);
    EXPECT_NE(token.error().message.find("claims_json is not a JSON object"), std::string::npos);
  }
  EXPECT_TRUE(server.requests().empty());
}

TEST(ClientTest, AStringThatIsNotUtf8IsAnErrorNotAThrow) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  const auto token = Client(server.options()).issue_jwt(for_sub("\xff\xfe"));
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().kind, Kind::protocol);
  EXPECT_TRUE(server.requests().empty());
}

TEST(ClientTest, AJwtAnswerMissingAMemberOrOfTheWrongTypeIsAProtocolError) {
  for (const std::string& body : {std::string(R"({"alg":"ES256","exp":1,"iat":1,"jwt":"a.b.c","kid":"k"})"),
                                  std::string(R"({"alg":"ES256","exp":1,"iat":"1","jti":"j","jwt":"a.b.c","kid":"k"})"),
                                  std::string(R"(["not", "an", "object"])"), std::string("{not json")}) {
    CannedServer server(replies(answer(200, body)));
    const auto token = Client(server.options()).issue_jwt(for_sub("alice"));
    ASSERT_FALSE(token) << body;
    EXPECT_EQ(token.error().kind, Kind::protocol) << token.error().what();
    EXPECT_NE(token.error().what().find("/v1/jwt"), std::string::npos) << token.error().what();
  }
}

TEST(ClientTest, SignSendsTheDigestAsBase64urlWithHashPaddingAndKid) {
  CannedServer server(replies(answer(200, R"({"signature":"AQID","kid":"k1","alg":"PS256","hash":"SHA-384","padding":"pss"})")));
  SignRequest request = for_digest(Bytes(48, 0x01));
  request.keyset = "rsa";
  request.kid = "k1";
  request.hash = Hash::sha384;
  request.padding = Padding::pss;
  const auto sig = Client(server.options()).sign(request);
  ASSERT_TRUE(sig) << sig.error().what();
  EXPECT_EQ(sig->signature, (Bytes{1, 2, 3}));
  EXPECT_EQ(sig->kid, "k1");
  EXPECT_EQ(sig->alg, "PS256");
  EXPECT_EQ(server.body(), json::parse(R"({"digest":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
                                           "keyset":"rsa","kid":"k1","hash":"SHA-384","padding":"pss"})"));
}

TEST(ClientTest, SignLeavesUnsetMembersOut) {
  CannedServer server(replies(answer(200, R"({"signature":"AQID","kid":"k1","alg":"ES256"})")));
  ASSERT_TRUE(Client(server.options()).sign(for_digest(Bytes(32, 0))));
  EXPECT_EQ(server.body(), json::parse(R"({"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})"));
}

TEST(ClientTest, ASignatureThatIsNotBase64urlIsAProtocolError) {
  for (const char* signature : {"AQID=", "A+ID", "\"\"", "5"}) {
    CannedServer server(
        replies(answer(200, std::string(R"({"kid":"k","alg":"ES256","signature":)") +
                                (signature[0] == '"' || signature[0] == '5' ? signature : "\"" + std::string(signature) + "\"") +
                                "}")));
    const auto sig = Client(server.options()).sign(for_digest(Bytes(32, 0)));
    ASSERT_FALSE(sig) << signature;
    EXPECT_EQ(sig.error().kind, Kind::protocol) << signature;
  }
}

TEST(ClientTest, KeysToleratesAbsentTimesAndSpki) {
  CannedServer server(replies(answer(200, R"({"keys":[
      {"kid":"a","keyset":"default","alg":"ES256","state":"active","usage":"sign","created":"2026-12-01T23:25:29Z",
       "activates":"2026-12-01T23:25:29Z","deactivates":"2026-12-31T23:25:29Z","retires":"2027-01-01T23:25:29Z",
       "spki":"MDkwEwYHKoZIzj0CAQ"},
      {"kid":"b","keyset":"rsa","alg":"PS256","state":"pending","created":"2026-12-01T23:25:29Z",
       "activates":"2026-12-02T23:25:29Z"}]})")));
  const auto keys = Client(server.options()).keys();
  ASSERT_TRUE(keys) << keys.error().what();
  ASSERT_EQ(keys->size(), 2u);
  const KeyInfo& a = (*keys)[0];
  EXPECT_EQ(a.kid, "a");
  EXPECT_EQ(a.keyset, "default");
  EXPECT_EQ(a.alg, "ES256");
  EXPECT_EQ(a.state, "active");
  EXPECT_EQ(a.usage, "sign");
  EXPECT_EQ(a.created, "2026-12-01T23:25:29Z");
  EXPECT_EQ(a.deactivates, "2026-12-31T23:25:29Z");
  EXPECT_EQ(a.retires, "2027-01-01T23:25:29Z");
  EXPECT_EQ(a.spki.size(), 13u);
  const KeyInfo& b = (*keys)[1];
  EXPECT_EQ(b.activates, "2026-12-02T23:25:29Z");
  EXPECT_TRUE(b.deactivates.empty());
  EXPECT_TRUE(b.retires.empty());
  EXPECT_TRUE(b.usage.empty());
  EXPECT_TRUE(b.spki.empty());
  EXPECT_EQ(server.requests().at(0).substr(0, 24), "GET /v1/keys HTTP/1.1\r\nH");
}

TEST(ClientTest, AKeyWithoutItsKidOrWithAWrongTypeIsAProtocolError) {
  for (const char* body : {R"({"keys":[{"keyset":"d","alg":"ES256","state":"active","created":"t","activates":"t"}]})",
                           R"({"keys":[{"kid":"a","keyset":"d","alg":"ES256","state":1,"created":"t","activates":"t"}]})",
                           R"({"keys":[{"kid":"a","keyset":"d","alg":"ES256","state":"active","created":"t","activates":"t","spki":"@"}]})",
                           R"({"keys":{}})", R"({"keys":[1]})", R"({})"}) {
    CannedServer server(replies(answer(200, body)));
    const auto keys = Client(server.options()).keys();
    ASSERT_FALSE(keys) << body;
    EXPECT_EQ(keys.error().kind, Kind::protocol) << body;
  }
}

TEST(ClientTest, JwksIsTheBodyAsServed) {
  const std::string jwks = R"({"keys":[{"kty":"EC","kid":"a"}]})";
  CannedServer server(replies(answer(200, jwks, "ETag: \"abc\"\r\n")));
  const auto got = Client(server.options()).jwks();
  ASSERT_TRUE(got) << got.error().what();
  EXPECT_EQ(*got, jwks);
}

// --- the daemon's refusals -------------------------------------------------------------------------

TEST(ClientTest, A429IsRefusedTransientWithItsRetryAfter) {
  CannedServer server(
      replies(answer(429, R"({"error":"overloaded","message":"over max_rate 10/s"})", "Retry-After: 7\r\n")));
  const auto token = Client(server.options()).issue_jwt(for_sub("alice"));
  ASSERT_FALSE(token);
  const Error& e = token.error();
  EXPECT_EQ(e.kind, Kind::refused);
  EXPECT_EQ(e.status, 429);
  EXPECT_EQ(e.code, "overloaded");
  EXPECT_EQ(e.message, "over max_rate 10/s");
  EXPECT_EQ(e.retry_after, 7s);
  EXPECT_TRUE(e.transient());
  EXPECT_EQ(e.what(), "429 overloaded: over max_rate 10/s");
}

TEST(ClientTest, A403IsRefusedAndNotTransient) {
  CannedServer server(replies(answer(403, R"({"error":"forbidden","message":"sub outside subjects"})")));
  const auto token = Client(server.options()).issue_jwt(for_sub("root"));
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().kind, Kind::refused);
  EXPECT_EQ(token.error().code, "forbidden");
  EXPECT_FALSE(token.error().transient());
}

TEST(ClientTest, A503WhoseBodyIsNotTheErrorShapeKeepsTheBodyAsTheMessage) {
  CannedServer server(replies(answer(503, R"({"status":"unavailable","reason":"C_Sign: CKR_DEVICE_ERROR"})")));
  const auto keys = Client(server.options()).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::refused);
  EXPECT_EQ(keys.error().status, 503);
  EXPECT_TRUE(keys.error().code.empty());
  EXPECT_NE(keys.error().message.find("CKR_DEVICE_ERROR"), std::string::npos);
  EXPECT_TRUE(keys.error().transient());
}

TEST(ClientTest, RequestGivesAnErrorStatusAsAResponse) {
  CannedServer server(replies(answer(404, R"({"error":"not_found","message":"no route"})", "Retry-After: 3\r\n")));
  const auto r = Client(server.options()).request("POST", "/v1/admin/rotate", R"({"keyset":"nope"})");
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->body, R"({"error":"not_found","message":"no route"})");
  EXPECT_EQ(r->retry_after, 3s);
  EXPECT_EQ(server.body(), json::parse(R"({"keyset":"nope"})"));
}

TEST(ClientTest, RequestRefusesATargetOrMethodThatCouldInjectHeaders) {
  CannedServer server(replies(answer(200, "{}")));
  const Client client(server.options());
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/keys\r\nX-Evil: 1"}, {"GET", "v1/keys"}, {"GET", "/a b"}, {"GE T", "/"}, {"", "/"}}) {
    const auto r = client.request(method, target);
    ASSERT_FALSE(r) << method << " " << target;
    EXPECT_EQ(r.error().kind, Kind::protocol);
  }
  EXPECT_TRUE(server.requests().empty());
}

TEST(ClientTest, AHeadAnswerHasNoBodyWhateverItsContentLength) {
  CannedServer server(replies("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"));
  const auto r = Client(server.options()).request("HEAD", "/.well-known/jwks.json");
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body.empty());
}

// --- framing --------------------------------------------------------------------------------------

TEST(ClientTest, ABodyEndedByTheConnectionClosingIsRead) {
  CannedServer server(replies("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"keys\":[]}"));
  const auto jwks = Client(server.options()).jwks();
  ASSERT_TRUE(jwks) << jwks.error().what();
  EXPECT_EQ(*jwks, R"({"keys":[]})");
}

TEST(ClientTest, AnInterimAnswerIsSkipped) {
  CannedServer server(replies("HTTP/1.1 100 Continue\r\n\r\n" + answer(200, R"({"keys":[]})")));
  const auto jwks = Client(server.options()).jwks();
  ASSERT_TRUE(jwks) << jwks.error().what();
}

TEST(ClientTest, AChunkedAnswerIsRefused) {
  CannedServer server(replies("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"keys\":[]}\r\n0\r\n\r\n"));
  const auto jwks = Client(server.options()).jwks();
  ASSERT_FALSE(jwks);
  EXPECT_EQ(jwks.error().kind, Kind::protocol);
}

TEST(ClientTest, AnAnswerThatIsNotHttpIsAProtocolErrorAtOnce) {
  CannedServer server([](int fd, const std::string& r) {
    send_all(fd, "SSH-2.0-OpenSSH_9.2\r\n");
    never_answer(fd, r);  // no close to end it: the client must tell by the first bytes
  });
  const auto start = std::chrono::steady_clock::now();
  const auto keys = Client(server.options(10s)).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::protocol);
  EXPECT_FALSE(keys.error().transient());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(ClientTest, MalformedHeadsAreProtocolErrors) {
  for (const char* head : {"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                           "HTTP/1.1 200 OK\r\n folded: value\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n"}) {
    CannedServer server(replies(head));
    const auto r = Client(server.options()).request("GET", "/v1/keys");
    ASSERT_FALSE(r) << head;
    EXPECT_EQ(r.error().kind, Kind::protocol) << head << ": " << r.error().what();
  }
}

TEST(ClientTest, AnAnswerOverTheLimitIsRefused) {
  {
    CannedServer server(replies("HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n"));
    const auto r = Client(server.options()).request("GET", "/.well-known/jwks.json");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::protocol);
    EXPECT_NE(r.error().message.find("16 MiB"), std::string::npos) << r.error().message;
  }
  {
    // Without a Content-Length the limit is found while reading.
    CannedServer server([](int fd, const std::string&) {
      send_all(fd, "HTTP/1.1 200 OK\r\n\r\n");
      send_all(fd, std::string(16 * 1024 * 1024 + 1, 'x'));
    });
    const auto r = Client(server.options()).request("GET", "/.well-known/jwks.json");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::protocol);
  }
  {
    CannedServer server(replies("HTTP/1.1 200 OK\r\n" + std::string(70 * 1024, 'x')));
    const auto r = Client(server.options()).request("GET", "/.well-known/jwks.json");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::protocol);
  }
}

// --- breakage, deadline, signals, processes and threads --------------------------------------------

TEST(ClientTest, AMissingSocketIsAConnectErrorNamingIt) {
  test::TempDir dir;
  const std::string socket = (dir.path() / "absent.sock").string();
  const auto keys = Client({socket, 1s}).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::connect);
  EXPECT_EQ(keys.error().what(), "cannot connect to " + socket + ": No such file or directory");
  EXPECT_FALSE(keys.error().transient());
}

TEST(ClientTest, ASocketPathTooLongForSunPathIsAConnectError) {
  const auto keys = Client({"/tmp/" + std::string(200, 'x'), 1s}).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::connect);
}

TEST(ClientTest, ADaemonThatNeverAnswersIsATimeoutWithinTheDeadline) {
  CannedServer server(never_answer);
  const auto start = std::chrono::steady_clock::now();
  const auto token = Client(server.options(300ms)).issue_jwt(for_sub("alice"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().kind, Kind::timeout) << token.error().what();
  EXPECT_TRUE(token.error().transient());
  EXPECT_NE(token.error().message.find(server.socket()), std::string::npos);
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 2s);
}

TEST(ClientTest, TheDeadlineBoundsTheWholeCallNotEachRead) {
  // A byte every 50 ms keeps every single read short; the call must still end at its deadline.
  CannedServer server([](int fd, const std::string&) {
    send_all(fd, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 100; ++i) {
      if (::send(fd, "X", 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(50ms);
    }
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r = Client(server.options(400ms)).request("GET", "/v1/keys");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(ClientTest, ADaemonThatClosesMidAnswerIsAnIoError) {
  CannedServer server(replies("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"keys\":"));
  const auto keys = Client(server.options()).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::io) << keys.error().what();
  EXPECT_TRUE(keys.error().transient());
}

TEST(ClientTest, ADaemonThatClosesWithoutAnsweringIsAnIoError) {
  CannedServer server(replies(""));
  const auto keys = Client(server.options()).keys();
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().kind, Kind::io) << keys.error().what();
}

TEST(ClientTest, APeerThatClosesBeforeTheRequestIsWrittenRaisesNoSigpipe) {
  // SIGPIPE at its default kills the process: the library must not rely on the host ignoring it.
  struct sigaction previous {};
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &default_action, &previous), 0);
  {
    CannedServer server([](int, const std::string&) {}, /*read_request=*/false);
    const std::string body(4 * 1024 * 1024, ' ');  // far more than the socket's buffer holds
    const auto r = Client(server.options()).request("POST", "/v1/jwt", body);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::io) << r.error().what();
  }
  ::sigaction(SIGPIPE, &previous, nullptr);
}

TEST(ClientTest, AnAnswerSentBeforeTheDaemonStoppedReadingIsStillRead) {
  // As the daemon does with too many connections: it answers 429 and closes without reading the request.
  CannedServer server(replies(answer(429, R"({"error":"overloaded","message":"too many connections"})", "Retry-After: 1\r\n")),
                      /*read_request=*/false);
  const auto r = Client(server.options()).request("POST", "/v1/jwt", std::string(4 * 1024 * 1024, ' '));
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->retry_after, 1s);
}

TEST(ClientTest, ACallInAForkedChildAndTheParentsNextCallBothWork) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  const Client client(server.options());
  ASSERT_TRUE(client.issue_jwt(for_sub("parent")));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Its own connection: nothing of the parent's is shared (the daemon knows a peer by its pid too).
    const auto token = client.issue_jwt(for_sub("child"));
    ::_exit(token && token->jwt == "eyJ.eyJ.sig" ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(client.issue_jwt(for_sub("parent again")));
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_NE(requests[1].find("\"child\""), std::string::npos);
}

TEST(ClientTest, OneClientServesManyThreads) {
  CannedServer server(replies(answer(200, kJwtAnswer)));
  const Client client(server.options(10s));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if (client.issue_jwt(for_sub("alice"))) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 160);
}

// --- the small pieces ------------------------------------------------------------------------------

TEST(ClientTest, TheDefaultSocketComesFromTheEnvironment) {
  ::setenv("HSMSIGND_SOCKET", "/tmp/elsewhere.sock", 1);
  EXPECT_EQ(default_socket(), "/tmp/elsewhere.sock");
  ::setenv("HSMSIGND_SOCKET", "", 1);
  EXPECT_EQ(default_socket(), "/run/hsmsignd/sign.sock");
  ::unsetenv("HSMSIGND_SOCKET");
  EXPECT_EQ(default_socket(), "/run/hsmsignd/sign.sock");
}

TEST(ClientTest, HashAndPaddingNamesAreTheApis) {
  EXPECT_EQ(name(Hash::sha256), "SHA-256");
  EXPECT_EQ(name(Hash::sha384), "SHA-384");
  EXPECT_EQ(name(Hash::sha512), "SHA-512");
  EXPECT_EQ(digest_size(Hash::sha256), 32u);
  EXPECT_EQ(digest_size(Hash::sha384), 48u);
  EXPECT_EQ(digest_size(Hash::sha512), 64u);
  EXPECT_EQ(name(Padding::pkcs1), "pkcs1");
  EXPECT_EQ(name(Padding::pss), "pss");
}

}  // namespace
}  // namespace hsmsignd::client
