#include "redis_client.h"

#include <stdexcept>

namespace hsmsignd::testing {
namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  return {static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
}

}  // namespace

RedisClient::RedisClient(const std::filesystem::path& socket, const std::string& password)
    : context_(redisConnectUnixWithTimeout(socket.c_str(), to_timeval(std::chrono::seconds(5)))) {
  if (!context_ || context_->err != 0)
    throw std::runtime_error("cannot connect to the test Redis: " + std::string(context_ ? context_->errstr : "oom"));
  redisSetTimeout(context_.get(), to_timeval(std::chrono::seconds(10)));
  if (!password.empty()) {
    auto reply = command({"AUTH", password});
    if (reply->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string("AUTH refused: ") + reply->str);
  }
}

RedisReplyPtr RedisClient::command(const std::vector<std::string>& argv) {
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  for (const auto& a : argv) {
    pointers.push_back(a.data());
    lengths.push_back(a.size());
  }
  RedisReplyPtr reply(static_cast<redisReply*>(
      redisCommandArgv(context_.get(), static_cast<int>(argv.size()), pointers.data(), lengths.data())));
  if (!reply) throw std::runtime_error("the test Redis connection failed: " + std::string(context_->errstr));
  return reply;
}

std::optional<std::string> RedisClient::get(const std::string& key) {
  auto reply = command({"GET", key});
  if (reply->type == REDIS_REPLY_NIL) return std::nullopt;
  if (reply->type != REDIS_REPLY_STRING) throw std::runtime_error("GET " + key + ": not a string reply");
  return std::string(reply->str, reply->len);
}

long long RedisClient::integer(const std::vector<std::string>& argv) {
  auto reply = command(argv);
  if (reply->type != REDIS_REPLY_INTEGER)
    throw std::runtime_error(argv.front() + ": not an integer reply" +
                             (reply->type == REDIS_REPLY_ERROR ? std::string(": ") + reply->str : std::string()));
  return reply->integer;
}

RedisReplyPtr RedisClient::next_reply(std::chrono::milliseconds timeout) {
  redisSetTimeout(context_.get(), to_timeval(timeout));
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK) return nullptr;
  return RedisReplyPtr(static_cast<redisReply*>(raw));
}

}  // namespace hsmsignd::testing
