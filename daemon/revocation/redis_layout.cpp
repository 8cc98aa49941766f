#include "revocation/redis_layout.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace hsmsignd::revocation::redis_layout {

// tonumber() of a missing key (false) or of a foreign value gives nil: the key is then written. Values
// go to SET as the strings the client sent, never as Lua numbers, which would print as 1.7e+09.
// The index member is added even when the key already holds a later value: two entries can share a
// key name (iss "a" with jti "b:c", iss "a:b" with jti "c"), and each must still be found by a resync.
// It is published when it is news for the other hosts: the key moved later, or the member is new or
// its expiry moved later (ZADD GT CH answers 1).
const std::string_view kPutScript = R"lua(
local at = tonumber(ARGV[1])
local old = tonumber(redis.call('GET', KEYS[1]))
local covered = old and old >= at
if not covered then
  redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
end
local news = redis.call('ZADD', KEYS[2], 'GT', 'CH', ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
if news == 1 or not covered then
  redis.call('PUBLISH', ARGV[6], ARGV[4])
end
if covered then
  return old
end
return at
)lua";

std::int64_t expires_of(Kind kind, std::int64_t at, const Lifetimes& lifetimes) {
  if (kind == Kind::jti) return at + lifetimes.clock_tolerance;
  return at + lifetimes.longest_max_ttl + lifetimes.clock_tolerance;
}


std::optional<Kind> kind_from_name(std::string_view name) {
  if (name == "jti") return Kind::jti;
  if (name == "subject") return Kind::subject;
  if (name == "keyset") return Kind::keyset;
  return std::nullopt;
}

std::string key_of(Kind kind, std::string_view iss, std::string_view name) {
  std::string key;
  switch (kind) {
    case Kind::jti:
      key = "hsmsignd:revoked:";
      break;
    case Kind::subject:
      key = "hsmsignd:notbefore:";
      break;
    case Kind::keyset:
      key = "hsmsignd:keyset-notbefore:";
      key += name;
      return key;
  }
  key += iss;
  key += ':';
  key += name;
  return key;
}

namespace {

// Who the entry names, checked as a message and a member both require.
std::optional<Entry> named_entry(const nlohmann::json& kind, const nlohmann::json& iss, const nlohmann::json& name) {
  if (!kind.is_string() || !iss.is_string() || !name.is_string()) return std::nullopt;
  const auto k = kind_from_name(kind.get_ref<const std::string&>());
  if (!k) return std::nullopt;
  Entry e;
  e.kind = *k;
  e.iss = iss.get<std::string>();
  e.name = name.get<std::string>();
  if (e.name.empty() || (e.kind == Kind::keyset) != e.iss.empty()) return std::nullopt;
  return e;
}

bool read_status(const nlohmann::json& uri, const nlohmann::json& idx, Entry& entry) {
  if (!uri.is_string() || !idx.is_number_unsigned()) return false;
  entry.status_uri = uri.get<std::string>();
  entry.status_idx = idx.get<std::int64_t>();
  return entry.status_idx >= 0;
}

bool is_instant(const nlohmann::json& j) {
  if (!j.is_number_integer()) return false;
  const auto v = j.get<std::int64_t>();
  return v >= 0 && v <= kLatestInstant;
}

}  // namespace

bool is_storable(const Entry& entry) {
  return !entry.name.empty() && (entry.kind == Kind::keyset) == entry.iss.empty() && entry.at >= 0 &&
         entry.at <= kLatestInstant;
}

// A token's Status List entry, when it has one, is part of what a host must learn back on resync: without
// it, the host that issued the token would lose the token's bit at its next restart.
std::string index_member(const Entry& entry) {
  auto member = nlohmann::json::array({kind_name(entry.kind), entry.iss, entry.name});
  if (entry.status_idx >= 0) member.insert(member.end(), {entry.status_uri, entry.status_idx});
  return member.dump();
}

std::optional<Entry> parse_index_member(std::string_view member) {
  const auto j = nlohmann::json::parse(member, nullptr, false);
  if (!j.is_array() || (j.size() != 3 && j.size() != 5)) return std::nullopt;
  auto entry = named_entry(j[0], j[1], j[2]);
  if (entry && j.size() == 5 && !read_status(j[3], j[4], *entry)) return std::nullopt;
  return entry;
}

std::string message_of(const Entry& entry) {
  // ordered_json: the members in the order the spec lists them, for a person reading the channel.
  nlohmann::ordered_json j;
  j["kind"] = kind_name(entry.kind);
  j["iss"] = entry.iss;
  j["name"] = entry.name;
  j["at"] = entry.at;
  j["expires"] = entry.expires;
  if (entry.status_idx >= 0) {
    j["status_uri"] = entry.status_uri;
    j["status_idx"] = entry.status_idx;
  }
  return j.dump();
}

std::optional<Entry> parse_message(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  for (const char* member : {"kind", "iss", "name", "at", "expires"})
    if (!j.contains(member)) return std::nullopt;
  auto entry = named_entry(j["kind"], j["iss"], j["name"]);
  if (!entry || !is_instant(j["at"]) || !j["expires"].is_number_integer()) return std::nullopt;
  entry->at = j["at"].get<std::int64_t>();
  entry->expires = j["expires"].get<std::int64_t>();
  if (j.contains("status_idx") && !read_status(j.value("status_uri", nlohmann::json()), j["status_idx"], *entry))
    return std::nullopt;
  return entry;
}

std::optional<std::int64_t> parse_instant(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0 || value > kLatestInstant)
    return std::nullopt;
  return value;
}

}  // namespace hsmsignd::revocation::redis_layout
