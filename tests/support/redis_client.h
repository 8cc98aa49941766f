// A plain hiredis client for the tests' own look at Redis: what a verifier other than hsmsignd would
// see. Deliberately not the store's RedisConnection, so that the tests do not check the store with
// its own code.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hsmsignd::testing {

struct RedisReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

class RedisClient {
 public:
  // Connects (and AUTHs when `password` is not empty); throws std::runtime_error when it cannot.
  explicit RedisClient(const std::filesystem::path& socket, const std::string& password = {});

  // The reply, or throws when the connection failed.
  RedisReplyPtr command(const std::vector<std::string>& argv);
  // A string reply's text, nullopt for nil; throws for anything else.
  std::optional<std::string> get(const std::string& key);
  // An integer reply; throws for anything else.
  long long integer(const std::vector<std::string>& argv);

  // Subscribing: the next reply within `timeout`, null when none came.
  RedisReplyPtr next_reply(std::chrono::milliseconds timeout);

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  std::unique_ptr<redisContext, ContextDeleter> context_;
};

}  // namespace hsmsignd::testing
