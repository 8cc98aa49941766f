// What hsmsignd keeps in Redis, and the one rule for when an entry stops mattering. Pure functions:
// the writer, the subscriber and the tests share them, and none of them needs a connection.
//
// Documented for verifiers that are not hsmsignd (the spec's "Redis layout"):
//   hsmsignd:revoked:<iss>:<jti>          value: exp            EXAT exp + clock_tolerance
//   hsmsignd:notbefore:<iss>:<sub>        value: not-before     EXAT value + longest max_ttl + clock_tolerance
//   hsmsignd:keyset-notbefore:<keyset>    value: not-before     EXAT as above
//   channel hsmsignd:revocations          one JSON message per stored entry
// and, for hsmsignd itself:
//   hsmsignd:index   a sorted set: one member per key above, ["<kind>","<iss>","<name>"] as JSON (and
//                    "<status uri>", <status idx> after them for a token revoked with its Status List entry), scored
//                    by the key's EXAT. The key names cannot be split back into iss and name (both may
//                    hold ':'), so a reconnecting daemon reads who is revoked from here and what the
//                    value is from the key itself. Written in the same script as the key; members whose
//                    score has passed are removed by every write.
// Every value only ever moves later (a revocation is never shortened), jti included.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "revocation/entry.h"

namespace hsmsignd::revocation::redis_layout {

inline constexpr std::string_view kChannel = "hsmsignd:revocations";
inline constexpr std::string_view kIndex = "hsmsignd:index";

struct Lifetimes {
  std::int64_t clock_tolerance = 0;  // seconds
  std::int64_t longest_max_ttl = 0;  // seconds
};

// When no token `kind`/`at` names can still be valid: exp + tolerance for a jti, not-before + the
// longest max_ttl + tolerance for a subject or keyset. The key's EXAT and the learned entry's
// `expires` are both this.
std::int64_t expires_of(Kind kind, std::int64_t at, const Lifetimes& lifetimes);

// kind_name() is entry.h's.
std::optional<Kind> kind_from_name(std::string_view name);

std::string key_of(Kind kind, std::string_view iss, std::string_view name);

// The entry's member of hsmsignd:index. Throws nlohmann::json::exception when iss or name is not UTF-8.
std::string index_member(const Entry& entry);
// The entry a member names, `at` and `expires` left 0; nullopt for anything hsmsignd did not write.
std::optional<Entry> parse_index_member(std::string_view member);

// The channel's message: {"kind","iss","name","at","expires"}, and "status_uri", "status_idx" for a token
// revoked with its Status List entry. Throws as index_member().
std::string message_of(const Entry& entry);
// nullopt for a message that is not one: not JSON, a member missing or of the wrong type, an unknown
// kind, a keyset with an iss, an empty name, `at` outside 0..kLatestInstant.
std::optional<Entry> parse_message(std::string_view text);

// Whether another host would take the entry's message (parse_message): a name, an iss exactly when it
// is not a keyset, `at` in 0..kLatestInstant. Its bytes are checked by the JSON encoding itself.
bool is_storable(const Entry& entry);

// A key's value (decimal unix seconds); nullopt when it is not one in 0..kLatestInstant.
std::optional<std::int64_t> parse_instant(std::string_view text);

// KEYS[1] the entry's key, KEYS[2] the index; ARGV: at, EXAT, index member, message, now, channel.
// Sets the key unless it already holds a later or equal value, adds the index member (or moves its
// score later), purges members whose time has passed, and publishes the entry when it is news.
// Idempotent. Returns the value in force afterwards.
extern const std::string_view kPutScript;

}  // namespace hsmsignd::revocation::redis_layout
