// [[client]]: who may ask for signatures (matched on the kernel's peer credentials), with which
// keysets, and what goes into the tokens it gets.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>

#include "config/accounts.h"
#include "config/sections.h"

namespace hsmsignd::config {
namespace {

// Short-lived tokens only: a stolen token must expire soon, since it cannot be revoked.
constexpr Duration kLongestTtl{15 * 60};
// (uid_t)-1 and (gid_t)-1 mean "no id" to the kernel; no peer has them.
constexpr std::int64_t kLargestId = std::numeric_limits<uid_t>::max() - 1;
static_assert(std::numeric_limits<uid_t>::max() == std::numeric_limits<gid_t>::max());

std::string read_name(const Section& client, const std::vector<ClientConfig>& earlier) {
  const std::optional<std::string> name = client.string("name");
  if (!name || name->empty()) client.fail("name", "required: a non-empty name, used in the audit log");
  for (std::size_t i = 0; i < earlier.size(); ++i)
    if (earlier[i].name == *name)
      client.fail("name", in_quotes(*name) + " is already the name of client[" + std::to_string(i) + "]");
  return *name;
}

// Names are resolved now, at load time: the kernel reports peers by number, and a name that does
// not resolve is a typo that would otherwise lock a client out (or, worse, go unnoticed).
template <typename Id, typename Find>
void resolve_names(const Section& client, std::string_view key, std::string_view what, Find find,
                   std::vector<std::string>& names, std::vector<Id>& ids) {
  names = client.strings(key).value_or(std::vector<std::string>{});
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::optional<Id> id;
    try {
      id = find(names[i]);
    } catch (const AccountLookupError& e) {
      client.fail_element(key, i, e.message);
    }
    if (!id) client.fail_element(key, i, "no such " + std::string(what) + " " + in_quotes(names[i]));
    ids.push_back(*id);
  }
}

template <typename Id>
void read_ids(const Section& client, std::string_view key, std::vector<Id>& ids) {
  for (const std::int64_t id : client.integers(key, 0, kLargestId).value_or(std::vector<std::int64_t>{}))
    ids.push_back(static_cast<Id>(id));
}

void read_peers(const Section& client, ClientConfig& out) {
  read_ids(client, "uids", out.uids);
  read_ids(client, "gids", out.gids);
  resolve_names(client, "users", "user", find_user, out.users, out.uids);
  resolve_names(client, "groups", "group", find_group, out.groups, out.gids);
  if (out.uids.empty() && out.gids.empty())
    client.fail("users", "the client matches no peer: set at least one of users, uids, groups or gids");
}

// A required array of non-empty strings.
std::vector<std::string> read_required_strings(const Section& client, std::string_view key) {
  const std::optional<std::vector<std::string>> values = client.strings(key);
  if (!values || values->empty()) client.fail(key, "required: a non-empty array of strings");
  for (std::size_t i = 0; i < values->size(); ++i)
    if ((*values)[i].empty()) client.fail_element(key, i, "must not be empty");
  return *values;
}

std::vector<std::string> read_keysets(const Section& client, const std::vector<KeysetConfig>& keysets) {
  std::vector<std::string> names = read_required_strings(client, "keysets");
  for (std::size_t i = 0; i < names.size(); ++i)
    if (std::none_of(keysets.begin(), keysets.end(), [&](const KeysetConfig& k) { return k.name == names[i]; }))
      client.fail_element("keysets", i, "no [[keyset]] is named " + in_quotes(names[i]));
  return names;
}

std::vector<Operation> read_operations(const Section& client) {
  const std::optional<std::vector<std::string>> names = client.strings("operations");
  if (!names) return {Operation::jwt};
  if (names->empty()) client.fail("operations", "must not be empty; leave it out for [\"jwt\"]");
  std::vector<Operation> out;
  for (std::size_t i = 0; i < names->size(); ++i) {
    const std::string& name = (*names)[i];
    if (name == "jwt") {
      out.push_back(Operation::jwt);
    } else if (name == "jws") {
      out.push_back(Operation::jws);
    } else if (name == "sign") {
      out.push_back(Operation::sign);
    } else {
      client.fail_element("operations", i, "unknown operation " + in_quotes(name) + "; use jwt, jws or sign");
    }
  }
  return out;
}

// iss and aud are what a JWT says: required of a client that may ask for JWTs. A client that only signs
// digests or JWS payloads (a TLS server's key, say) has none to give, and may leave them out.
void read_jwt_claims(const Section& client, ClientConfig& out) {
  const bool issues_jwts = std::find(out.operations.begin(), out.operations.end(), Operation::jwt) != out.operations.end();
  const std::optional<std::string> issuer = client.string("issuer");
  if (issues_jwts && (!issuer || issuer->empty()))
    client.fail("issuer", "required: the iss of every token this client gets");
  if (issuer && issuer->empty()) client.fail("issuer", "must not be empty; leave it out when the client gets no JWTs");
  out.issuer = issuer.value_or("");
  if (issues_jwts || client.has("audiences")) out.audiences = read_required_strings(client, "audiences");
}

void read_ttls(const Section& client, ClientConfig& out) {
  out.max_ttl = client.duration("max_ttl").value_or(out.max_ttl);
  if (out.max_ttl <= Duration::zero() || out.max_ttl > kLongestTtl)
    client.fail("max_ttl", "must be from 1s to 15m (short-lived tokens only), not " + format_duration(out.max_ttl));
  // Left out, the default follows a shorter max_ttl down instead of contradicting it.
  out.default_ttl = client.duration("default_ttl").value_or(std::min(out.default_ttl, out.max_ttl));
  if (out.default_ttl <= Duration::zero() || out.default_ttl > out.max_ttl)
    client.fail("default_ttl", "must be from 1s to max_ttl (" + format_duration(out.max_ttl) + "), not " +
                                   format_duration(out.default_ttl));
}

// A compromised issuer must not mint tokens for everyone: patterns are exact, or a prefix and one
// trailing '*'. Anything that would quietly allow more, or nothing at all, is a typo to report.
std::vector<std::string> read_subjects(const Section& client, const std::vector<Operation>& operations) {
  const std::optional<std::vector<std::string>> patterns = client.strings("subjects");
  if (!patterns) return {};
  if (patterns->empty()) client.fail("subjects", "must not be empty; leave subjects out to allow any subject");
  // A JWS or a digest can be a JWT for any sub: the patterns would bind the client to nothing.
  if (std::any_of(operations.begin(), operations.end(), [](Operation op) { return op != Operation::jwt; }))
    client.fail("subjects", "needs operations = [\"jwt\"] alone: a client that may use jws or sign can have a "
                            "token for any subject signed");
  for (std::size_t i = 0; i < patterns->size(); ++i) {
    const std::string& p = (*patterns)[i];
    if (p.empty()) client.fail_element("subjects", i, "must not be empty: no token has an empty sub");
    if (p == "*") client.fail_element("subjects", i, "\"*\" allows every subject; leave subjects out instead");
    if (p.find('*') < p.size() - 1)
      client.fail_element("subjects", i, "a '*' may only end a pattern (\"user:*\"), not " + in_quotes(p));
  }
  return *patterns;
}

constexpr std::uint32_t kMostRequests = 1'000'000;

std::optional<Rate> read_max_rate(const Section& client) {
  const std::optional<std::string> text = client.string("max_rate");
  if (!text) return std::nullopt;
  const auto fail = [&](std::string_view why) {
    client.fail("max_rate", std::string(why) + " (" + in_quotes(*text) + "); use e.g. \"200/s\" or \"30/m\"");
  };
  const std::size_t slash = text->find('/');
  const std::string count = text->substr(0, slash);
  const std::string unit = slash == std::string::npos ? "" : text->substr(slash + 1);
  if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos)
    fail("not a whole number of requests followed by /s or /m");
  if (unit != "s" && unit != "m") fail("the unit must be /s or /m");
  std::uint64_t n = 0;
  const auto [end, error] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (error != std::errc() || n > kMostRequests) fail("at most 1000000 requests per second or minute");
  if (n == 0) fail("a rate of zero would refuse every request; leave max_rate out for no limit");
  return Rate{static_cast<std::uint32_t>(n), Duration{unit == "s" ? 1 : 60}};
}

ClientConfig read_client(const Section& client, const std::vector<ClientConfig>& earlier,
                         const std::vector<KeysetConfig>& keysets) {
  client.allow_only({"name", "users", "uids", "groups", "gids", "keysets", "operations", "issuer", "audiences",
                     "max_ttl", "default_ttl", "subjects", "max_rate"});
  ClientConfig out;
  out.name = read_name(client, earlier);
  read_peers(client, out);
  out.keysets = read_keysets(client, keysets);
  out.operations = read_operations(client);
  read_jwt_claims(client, out);
  read_ttls(client, out);
  out.subjects = read_subjects(client, out.operations);
  out.max_rate = read_max_rate(client);
  return out;
}

}  // namespace

std::vector<ClientConfig> read_clients(const Section& root, const std::vector<KeysetConfig>& keysets) {
  std::vector<ClientConfig> out;
  for (const Section& client : root.tables("client")) out.push_back(read_client(client, out, keysets));
  return out;
}

}  // namespace hsmsignd::config
