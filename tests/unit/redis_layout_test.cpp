// The Redis layout of the spec, as names and texts: keys, index members, messages and the expiry rule.
#include "revocation/redis_layout.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace hsmsignd::revocation::redis_layout {
namespace {

constexpr Lifetimes kLifetimes{10, 3600};

TEST(RedisLayout, KeysAreTheDocumentedNames) {
  EXPECT_EQ(key_of(Kind::jti, "https://a.example", "j-1"), "hsmsignd:revoked:https://a.example:j-1");
  EXPECT_EQ(key_of(Kind::subject, "https://a.example", "user:1"), "hsmsignd:notbefore:https://a.example:user:1");
  EXPECT_EQ(key_of(Kind::keyset, "", "payments"), "hsmsignd:keyset-notbefore:payments");
  EXPECT_EQ(kChannel, "hsmsignd:revocations");
}

TEST(RedisLayout, ExpiryRule) {
  EXPECT_EQ(expires_of(Kind::jti, 1000, kLifetimes), 1010);
  EXPECT_EQ(expires_of(Kind::subject, 1000, kLifetimes), 4610);
  EXPECT_EQ(expires_of(Kind::keyset, 1000, kLifetimes), 4610);
}

TEST(RedisLayout, IndexMembersTellWhatKeyNamesCannot) {
  // Two entries, one key name: only the member tells them apart.
  const Entry a{Kind::jti, "https://a", "b:c", 0, 0};
  const Entry b{Kind::jti, "https://a:b", "c", 0, 0};
  ASSERT_EQ(key_of(a.kind, a.iss, a.name), key_of(b.kind, b.iss, b.name));
  EXPECT_NE(index_member(a), index_member(b));
  EXPECT_EQ(index_member(a), R"(["jti","https://a","b:c"])");
  for (const Entry& e : {a, b, Entry{Kind::keyset, "", "ks", 0, 0}, Entry{Kind::subject, "i", "s\"\\\n", 0, 0}}) {
    const auto back = parse_index_member(index_member(e));
    ASSERT_TRUE(back) << index_member(e);
    EXPECT_EQ(back->kind, e.kind);
    EXPECT_EQ(back->iss, e.iss);
    EXPECT_EQ(back->name, e.name);
  }
  for (const char* bad : {"", "x", "[]", R"(["jti","i"])", R"(["jti","i","n","x"])", R"(["nope","i","n"])",
                          R"(["jti","","n"])", R"(["keyset","i","n"])", R"(["jti","i",""])", R"(["jti",1,"n"])",
                          R"({"kind":"jti"})"})
    EXPECT_FALSE(parse_index_member(bad)) << bad;
  EXPECT_THROW(index_member(Entry{Kind::jti, "i", "\xff", 0, 0}), nlohmann::json::exception);
}

TEST(RedisLayout, Messages) {
  const Entry e{Kind::subject, "https://a", "user:1", 1700000000, 1700003610};
  EXPECT_EQ(message_of(e),
            R"({"kind":"subject","iss":"https://a","name":"user:1","at":1700000000,"expires":1700003610})");
  const auto back = parse_message(message_of(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->kind, e.kind);
  EXPECT_EQ(back->iss, e.iss);
  EXPECT_EQ(back->name, e.name);
  EXPECT_EQ(back->at, e.at);
  EXPECT_EQ(back->expires, e.expires);
  EXPECT_TRUE(parse_message(R"({"kind":"keyset","iss":"","name":"ks","at":0,"expires":5,"extra":1})"));
  for (const char* bad : {"", "null", "[]", R"({"kind":"jti","iss":"i","name":"n","at":1})",
                          R"({"kind":"jti","iss":"i","name":"n","at":-1,"expires":1})",
                          R"({"kind":"jti","iss":"i","name":"n","at":1.5,"expires":1})",
                          R"({"kind":"jti","iss":"i","name":"n","at":253402300800,"expires":1})",
                          R"({"kind":"jti","iss":"i","name":"n","at":1,"expires":"1"})",
                          R"({"kind":"JTI","iss":"i","name":"n","at":1,"expires":1})",
                          R"({"kind":"jti","iss":"","name":"n","at":1,"expires":1})",
                          R"({"kind":"keyset","iss":"i","name":"n","at":1,"expires":1})"})
    EXPECT_FALSE(parse_message(bad)) << bad;
}

TEST(RedisLayout, Instants) {
  EXPECT_EQ(parse_instant("0"), 0);
  EXPECT_EQ(parse_instant("1700000000"), 1700000000);
  EXPECT_EQ(parse_instant("253402300799"), kLatestInstant);
  for (const char* bad : {"", "-1", "+1", "1.0", "1e9", " 1", "1 ", "253402300800", "99999999999999999999"})
    EXPECT_FALSE(parse_instant(bad)) << bad;
}

TEST(RedisLayout, Storable) {
  EXPECT_TRUE(is_storable({Kind::jti, "i", "n", 1, 0}));
  EXPECT_TRUE(is_storable({Kind::keyset, "", "n", 1, 0}));
  EXPECT_FALSE(is_storable({Kind::jti, "", "n", 1, 0}));
  EXPECT_FALSE(is_storable({Kind::keyset, "i", "n", 1, 0}));
  EXPECT_FALSE(is_storable({Kind::subject, "i", "", 1, 0}));
  EXPECT_FALSE(is_storable({Kind::jti, "i", "n", -1, 0}));
  EXPECT_FALSE(is_storable({Kind::jti, "i", "n", kLatestInstant + 1, 0}));
}

}  // namespace
}  // namespace hsmsignd::revocation::redis_layout
