// The [revocation] redis value: what the config layer accepts, and what it refuses with a reason.
#include "revocation/redis_address.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::revocation {
namespace {

RedisAddress accepted(const std::string& text) {
  const ParsedRedisAddress parsed = parse_redis_address(text);
  EXPECT_TRUE(parsed.address.has_value()) << text << ": " << parsed.error;
  EXPECT_TRUE(parsed.error.empty()) << text;
  return parsed.address.value_or(RedisAddress{});
}

// The reason, which must say something and never quote the text.
std::string refused(const std::string& text) {
  const ParsedRedisAddress parsed = parse_redis_address(text);
  EXPECT_FALSE(parsed.address.has_value()) << text << " was accepted";
  EXPECT_FALSE(parsed.error.empty()) << text;
  return parsed.error;
}

TEST(RedisAddress, UnixSocketPaths) {
  const RedisAddress a = accepted("unix:/run/redis/redis-server.sock");
  EXPECT_EQ(a.kind, RedisAddress::Kind::unix_socket);
  EXPECT_EQ(a.path, "/run/redis/redis-server.sock");
  EXPECT_EQ(a.text(), "unix:/run/redis/redis-server.sock");
  EXPECT_EQ(accepted("unix:/r").path, "/r");
  EXPECT_EQ(accepted("unix:/" + std::string(106, 'a')).path.size(), 107u);  // sun_path holds 107 and a NUL
}

TEST(RedisAddress, UnixSocketPathsRefused) {
  EXPECT_NE(refused("unix:").find("path"), std::string::npos);
  EXPECT_NE(refused("unix:run/redis.sock").find("absolute"), std::string::npos);
  EXPECT_NE(refused("unix://run/redis.sock").find("one slash"), std::string::npos);
  EXPECT_NE(refused("unix:///run/redis.sock").find("one slash"), std::string::npos);
  EXPECT_NE(refused("unix:/" + std::string(107, 'a')).find("longer"), std::string::npos);
  refused(std::string("unix:/run/a\0b", 13));
}

TEST(RedisAddress, TcpHostsAndPorts) {
  RedisAddress a = accepted("tcp://127.0.0.1:6379");
  EXPECT_EQ(a.kind, RedisAddress::Kind::tcp);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.text(), "tcp://127.0.0.1:6379");

  a = accepted("tcp://[::1]:6380");
  EXPECT_EQ(a.host, "::1");  // without its brackets, as the resolver takes it
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.text(), "tcp://[::1]:6380");
  EXPECT_EQ(accepted("tcp://[2001:db8::17]:1").host, "2001:db8::17");

  EXPECT_EQ(accepted("tcp://redis.internal.example:6379").host, "redis.internal.example");
  EXPECT_EQ(accepted("tcp://localhost:6379").host, "localhost");
  EXPECT_EQ(accepted("tcp://redis_1:6379").host, "redis_1");   // a compose service name
  EXPECT_EQ(accepted("tcp://redis-7.a1:6379").host, "redis-7.a1");
  EXPECT_EQ(accepted("tcp://h:1").port, 1);
  EXPECT_EQ(accepted("tcp://h:65535").port, 65535);
}

TEST(RedisAddress, TcpRefused) {
  EXPECT_NE(refused("tcp://redis.example").find("port"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:0").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:65536").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:+6379").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:6379 ").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://redis.example:123456").find("1 to 65535"), std::string::npos);
  EXPECT_NE(refused("tcp://:6379").find("host"), std::string::npos);
  EXPECT_NE(refused("tcp://::1:6379").find("brackets"), std::string::npos);
  EXPECT_NE(refused("tcp://[::1]").find("port"), std::string::npos);
  EXPECT_NE(refused("tcp://[::1:6379").find("']'"), std::string::npos);
  EXPECT_NE(refused("tcp://[127.0.0.1]:6379").find("IPv6"), std::string::npos);
  EXPECT_NE(refused("tcp://[fe80::1%eth0]:6379").find("zone"), std::string::npos);
  EXPECT_NE(refused("tcp://127.1:6379").find("host name"), std::string::npos);  // not a dotted quad
  EXPECT_NE(refused("tcp://256.0.0.1:6379").find("host name"), std::string::npos);
  refused("tcp://-redis:6379");
  refused("tcp://redis-:6379");
  refused("tcp://re dis:6379");
  refused("tcp://redis..example:6379");
  refused("tcp://" + std::string(64, 'a') + ":6379");  // a label of 64
  refused("tcp://redis.example:6379/0");
  refused("tcp://redis.example:6379?db=1");
}

TEST(RedisAddress, APasswordInTheAddressIsRefusedWithoutBeingRepeated) {
  const std::string error = refused("tcp://default:hunter2-secret@redis.example:6379");
  EXPECT_NE(error.find("redis_password_file"), std::string::npos);
  EXPECT_EQ(error.find("hunter2-secret"), std::string::npos);
}

TEST(RedisAddress, OtherSchemesAndForms) {
  for (const char* text : {"", "redis://localhost:6379", "rediss://h:6379", "localhost:6379", "/run/redis.sock",
                           "UNIX:/run/redis.sock", "TCP://h:1", " unix:/run/redis.sock", "tcp:/h:1"}) {
    EXPECT_NE(refused(text).find("unix:/abs/path or tcp://host:port"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace hsmsignd::revocation
