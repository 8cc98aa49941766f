// The issuer client library: typed calls to hsmsignd's issuer socket, for C++ issuers, hsmsignctl and the
// OpenSSL provider. Every call opens its own connection and closes it before returning, so a Client can be
// shared by threads, and a process that forks never shares a connection with its child (the daemon knows a
// peer by the SO_PEERCRED taken at connect): each request says `Connection: close`, and its socket is
// close-on-exec. Nothing here throws, aborts or raises SIGPIPE (sends use MSG_NOSIGNAL): every failure is
// an Error value. The library is tools/client/ (CMake target hsmsignd_client: libc and nlohmann_json only,
// position-independent); docs/issuers.md has an example.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hsmsignd/bytes.h"
#include "hsmsignd/result.h"

namespace hsmsignd::client {

// $HSMSIGND_SOCKET when set and not empty, else /run/hsmsignd/sign.sock.
std::string default_socket();

struct Options {
  std::string socket = default_socket();
  // For the whole call: connect, request and answer. A daemon that does not answer in time is an Error of
  // kind timeout, never a hang.
  std::chrono::milliseconds timeout{10000};
};

struct Error {
  enum class Kind {
    connect,   // no daemon at the socket (absent, refused, permission denied)
    timeout,   // the call did not complete within Options::timeout
    io,        // the connection broke mid-call
    protocol,  // the answer is not HTTP, or not the JSON the API documents
    refused,   // the daemon answered with an error status: `status`, `code` and `message` say which
  };
  Kind kind = Kind::io;
  int status = 0;                    // the HTTP status, for refused
  std::string code;                  // the API's error code ("forbidden", "unavailable", ...), for refused
  std::string message;               // for a person
  std::chrono::seconds retry_after{0};  // from Retry-After (429, 503), when the daemon sent one

  // Whether asking again later may succeed: a timeout, a broken connection, 429 or 503.
  bool transient() const;
  std::string what() const;
};

template <class T>
using Result = Expected<T, Error>;

// An answer as it came, for routes the typed calls below do not cover.
struct Response {
  int status = 0;
  std::string content_type;
  std::string body;
  std::chrono::seconds retry_after{0};
};

struct JwtRequest {
  std::string sub;
  std::vector<std::string> aud;     // empty: the client's default audience
  std::optional<std::int64_t> ttl;  // seconds; absent: the client's default_ttl
  std::string keyset;               // empty: the client's first keyset
  std::string typ;                  // empty: "JWT"
  std::string claims_json;          // private claims as one JSON object; empty: none
};

struct Jwt {
  std::string jwt, alg, kid, jti;
  std::int64_t iat = 0, exp = 0;
};

enum class Hash { sha256, sha384, sha512 };
enum class Padding { pkcs1, pss };  // RSA only; PSS with MGF1 of the same hash and a salt of its length

std::string_view name(Hash h);     // "SHA-256", "SHA-384", "SHA-512": as the API writes them
std::string_view name(Padding p);  // "pkcs1", "pss"
std::size_t digest_size(Hash h);

struct SignRequest {
  Bytes digest;                    // the hash the caller computed
  std::string keyset;              // empty: the client's first keyset (ignored when kid is set)
  std::string kid;                 // empty: the keyset's active key
  std::optional<Hash> hash;        // absent: the keyset algorithm's own
  std::optional<Padding> padding;  // absent: the keyset algorithm's own (RSA)
};

struct Signature {
  Bytes signature;  // ECDSA: r‖s, each as long as the curve's field (not DER); RSA: the modulus' length
  std::string alg, kid;
};

struct KeyInfo {
  std::string kid, keyset, alg, state, usage;
  std::string created, activates, deactivates, retires;  // RFC 3339 as the daemon wrote them
  Bytes spki;  // DER SubjectPublicKeyInfo
};

class Client {
 public:
  explicit Client(Options options = {});

  Result<Jwt> issue_jwt(const JwtRequest& request) const;        // POST /v1/jwt
  Result<Signature> sign(const SignRequest& request) const;      // POST /v1/sign
  Result<std::vector<KeyInfo>> keys() const;                     // GET /v1/keys
  Result<std::string> jwks() const;                              // GET /.well-known/jwks.json, as served

  // Any route of any of the daemon's sockets (hsmsignctl uses it for the admin socket). An error status is
  // a Response here, not an Error: only a call that got no well-formed answer fails.
  Result<Response> request(std::string_view method, std::string_view target, std::string_view body = {}) const;

  const Options& options() const { return options_; }

 private:
  template <class T, class Parse>
  Result<T> call(std::string_view method, std::string_view target, std::string_view body, Parse&& parse) const;

  Options options_;
};

}  // namespace hsmsignd::client
