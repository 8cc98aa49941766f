// [jwks]: where the public keys are published, and how long verifiers may cache them.
#include "config/listen_address.h"
#include "config/sections.h"

namespace hsmsignd::config {
namespace {

// Verifiers cache the JWKS this long; a day is already long for a key set that rotates.
constexpr Duration kLongestMaxAge{86400};

void read_listen(const Section& jwks, JwksConfig& out) {
  const std::optional<std::string> listen = jwks.string("listen");
  if (!listen) return;
  out.listen = *listen;
  if (listen->empty()) {
    out.listen_host.clear();
    out.listen_port = 0;
    return;
  }
  const std::optional<ListenAddress> address = parse_listen_address(*listen);
  if (!address)
    jwks.fail("listen", "not an address (" + in_quotes(*listen) +
                            R"(); use "IPv4:port" or "[IPv6]:port" with an IP literal (no host names) and a)"
                            R"( port from 1 to 65535, or "" for no listener)");
  out.listen_host = address->host;
  out.listen_port = address->port;
}

}  // namespace

JwksConfig read_jwks(const Section& root) {
  JwksConfig out;
  const std::optional<Section> jwks = root.table("jwks");
  if (!jwks) return out;
  jwks->allow_only({"listen", "file", "max_age"});

  read_listen(*jwks, out);
  // Like listen, "" says "none" explicitly.
  if (jwks->string("file").value_or("") != "") out.file = *jwks->path("file");
  out.max_age = jwks->duration("max_age").value_or(out.max_age);
  if (out.max_age < Duration{1} || out.max_age > kLongestMaxAge)
    jwks->fail("max_age", "must be from 1s to 1d, not " + format_duration(out.max_age));
  return out;
}

}  // namespace hsmsignd::config
