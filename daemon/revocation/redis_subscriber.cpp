#include "revocation/redis_subscriber.h"

#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "revocation/redis_layout.h"
#include "revocation/sigpipe_block.h"

namespace hsmsignd::revocation {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kTimeout = 2000ms;        // connect, and each command of a resync
constexpr auto kReadTimeout = 250ms;     // how soon stop() is noticed
constexpr auto kIdlePing = 1000ms;       // silence after which the connection is asked whether it lives
constexpr auto kPingPatience = 3000ms;   // a half-open TCP connection or a frozen Redis: down after this
constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = 1000ms;
constexpr const char* kScanCount = "1000";

std::string_view text_of(const redisReply& r) { return {r.str, r.len}; }

bool is_string(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

// A sorted-set score as ZSCAN gives it ("1767225600", or "1.7672256e+09" for another writer's).
std::optional<double> parse_score(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

RedisSubscriber::RedisSubscriber(const RedisLink& link, Learned learned, RedisLinkReport report)
    : link_(link), learned_(std::move(learned)), report_(std::move(report)) {}

RedisSubscriber::~RedisSubscriber() { stop(); }

void RedisSubscriber::start() {
  std::string why;
  std::optional<RedisConnection> connection;
  {
    const SigpipeBlock no_sigpipe;  // on the caller's thread, for this first attempt only
    connection = subscribe(why);
  }
  report_(connection.has_value(), why);
  thread_ = std::jthread([this, first = std::move(connection)](std::stop_token stop) mutable {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-rsub");
    const SigpipeBlock no_sigpipe;
    run(stop, std::move(first));
  });
}

void RedisSubscriber::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void RedisSubscriber::run(std::stop_token stop, std::optional<RedisConnection> connection) {
  std::mutex mutex;
  std::condition_variable_any wake;  // only a stop wakes it
  auto backoff = kFirstBackoff;
  for (;;) {
    if (!connection) {
      {
        std::unique_lock lock(mutex);
        wake.wait_for(lock, stop, backoff, [] { return false; });
      }
      if (stop.stop_requested()) return;
      std::string why;
      connection = subscribe(why);
      if (!connection) {
        report_(false, why);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      report_(true, {});
      backoff = kFirstBackoff;
    }
    std::string why;
    if (listen(*connection, stop, why)) return;
    connection.reset();
    report_(false, why);
  }
}

std::optional<RedisConnection> RedisSubscriber::subscribe(std::string& why) {
  std::optional<RedisConnection> c = RedisConnection::open(link_.address, link_.password, kTimeout, why);
  if (!c) return std::nullopt;
  const RedisReply reply = c->command({"SUBSCRIBE", redis_layout::kChannel});
  // ["subscribe", channel, 1]
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !is_string(reply->element[0]) ||
      text_of(*reply->element[0]) != "subscribe") {
    why = describe_failure("redis refused SUBSCRIBE", *c, reply.get());
    return std::nullopt;
  }
  // Only now, with every later message on its way to us, is what is already stored read.
  if (!resync(why)) return std::nullopt;
  return c;
}

bool RedisSubscriber::resync(std::string& why) {
  std::optional<RedisConnection> c = RedisConnection::open(link_.address, link_.password, kTimeout, why);
  if (!c) return false;
  const double now = static_cast<double>(link_.now());
  std::string cursor = "0";
  // ZSCAN, not one ZRANGE: it pages through a large index without a reply of its whole size, and it
  // returns every member present for the whole scan even while writers add or purge members.
  do {
    const RedisReply page = c->command({"ZSCAN", redis_layout::kIndex, cursor, "COUNT", kScanCount});
    if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2 || !is_string(page->element[0]) ||
        page->element[1]->type != REDIS_REPLY_ARRAY || page->element[1]->elements % 2 != 0) {
      why = describe_failure("redis resync: ZSCAN of " + std::string(redis_layout::kIndex) + " failed", *c,
                             page.get());
      return false;
    }
    cursor = std::string(text_of(*page->element[0]));
    const redisReply& items = *page->element[1];
    std::vector<Entry> entries;
    std::vector<std::string> mget{"MGET"};
    for (std::size_t i = 0; i + 1 < items.elements; i += 2) {
      if (!is_string(items.element[i]) || !is_string(items.element[i + 1])) continue;
      const auto score = parse_score(text_of(*items.element[i + 1]));
      if (!score || *score < now) continue;  // its key has expired; the next write purges the member
      auto entry = redis_layout::parse_index_member(text_of(*items.element[i]));
      if (!entry) continue;  // not hsmsignd's
      mget.push_back(redis_layout::key_of(entry->kind, entry->iss, entry->name));
      entries.push_back(std::move(*entry));
    }
    if (entries.empty()) continue;
    const RedisReply values = c->command(mget);
    if (!values || values->type != REDIS_REPLY_ARRAY || values->elements != entries.size()) {
      why = describe_failure("redis resync: MGET failed", *c, values.get());
      return false;
    }
    for (std::size_t i = 0; i < entries.size(); ++i) {
      // Nil: expired between the two commands (or deleted by hand); then it is not in force.
      if (!is_string(values->element[i])) continue;
      const auto at = redis_layout::parse_instant(text_of(*values->element[i]));
      if (!at) continue;
      Entry& e = entries[i];
      e.at = *at;
      e.expires = redis_layout::expires_of(e.kind, e.at, link_.lifetimes);
      learned_(e);
    }
  } while (cursor != "0");
  return true;
}

bool RedisSubscriber::on_reply(const redisReply& reply, bool& pong) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 1 || !is_string(reply.element[0])) return false;
  const std::string_view type = text_of(*reply.element[0]);
  if (type == "pong") {
    pong = true;
    return true;
  }
  if (type != "message") return true;  // (un)subscribe confirmations
  if (reply.elements != 3 || !is_string(reply.element[2])) return false;
  auto entry = redis_layout::parse_message(text_of(*reply.element[2]));
  if (!entry) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // The sender's `expires` follows its own configuration; what matters here is this host's rule.
  entry->expires = redis_layout::expires_of(entry->kind, entry->at, link_.lifetimes);
  learned_(*entry);
  return true;
}

bool RedisSubscriber::listen(RedisConnection& c, const std::stop_token& stop, std::string& why) {
  auto last_heard = Clock::now();
  std::optional<Clock::time_point> ping_sent;
  for (;;) {
    // What the last read brought may hold several replies, and the SUBSCRIBE's read may have brought
    // messages already.
    for (;;) {
      RedisReply reply;
      if (!c.buffered_reply(reply)) {
        why = "redis connection broken: " + c.error();
        return false;
      }
      if (!reply) break;
      bool pong = false;
      if (!on_reply(*reply, pong)) {
        why = "redis sent a subscriber something other than a message";
        return false;
      }
      if (pong) ping_sent.reset();
    }
    if (stop.stop_requested()) return true;
    pollfd p{c.fd(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(kReadTimeout.count()));
    if (ready < 0 && errno != EINTR) {
      why = std::string("redis connection: poll failed: ") + std::strerror(errno);
      return false;
    }
    const auto now = Clock::now();
    if (ready > 0) {
      if (!c.read_available()) {  // the end of the stream (Redis went away) lands here too
        why = "redis connection lost: " + c.error();
        return false;
      }
      last_heard = now;
      continue;
    }
    if (ping_sent && now - std::max(last_heard, *ping_sent) > kPingPatience) {
      why = "redis did not answer PING within " + std::to_string(kPingPatience.count()) + " ms";
      return false;
    }
    if (!ping_sent && now - last_heard >= kIdlePing) {
      // A subscribed connection takes PING; a lost peer that never closed the socket shows up here.
      if (!c.append({"PING"}) || !c.flush()) {
        why = "redis connection lost: " + c.error();
        return false;
      }
      ping_sent = now;
    }
  }
}

}  // namespace hsmsignd::revocation
