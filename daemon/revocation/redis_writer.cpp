#include "revocation/redis_writer.h"

#include <pthread.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

#include "revocation/redis_layout.h"
#include "revocation/sigpipe_block.h"

namespace hsmsignd::revocation {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Long beside an fsync of the append-only file (with appendfsync always Redis answers only after it),
// short enough that a Redis that stopped answering fails the request instead of hanging it.
constexpr auto kTimeout = 2000ms;
constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = 1000ms;
constexpr auto kStopPatience = 1000ms;
// One pipeline's worth: bounds the request buffer, not the rate.
constexpr std::size_t kMaxBatch = 1000;

}  // namespace

RedisWriter::RedisWriter(const RedisLink& link, RedisLinkReport report) : link_(link), report_(std::move(report)) {}

RedisWriter::~RedisWriter() { stop(); }

void RedisWriter::start() {
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-rwrite");
    const SigpipeBlock no_sigpipe;
    run();
  });
}

void RedisWriter::put(Entry entry, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(entry), std::move(done), {}});
      wake_.notify_one();
      return;
    }
  }
  if (done) done(false);
}

void RedisWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) stop_deadline_ = Clock::now() + kStopPatience;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Only when the thread never ran is anything left; nothing else will answer it.
  std::vector<Pending> left;
  {
    std::lock_guard lock(mutex_);
    left.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
  }
  fail(left);
}

void RedisWriter::fail(std::vector<Pending>& batch) {
  for (auto& p : batch)
    if (p.done) p.done(false);
  batch.clear();
}

void RedisWriter::set_up(bool up, const std::string& reason) {
  if (up == up_) return;
  up_ = up;
  report_(up, reason);
}

bool RedisWriter::connect(std::string& why, std::chrono::milliseconds timeout) {
  connection_ = RedisConnection::open(link_.address, link_.password, timeout, why);
  return connection_.has_value();
}

void RedisWriter::prepare(std::vector<Pending>& batch) {
  const std::string now = std::to_string(link_.now());
  std::vector<Pending> ready;
  ready.reserve(batch.size());
  for (auto& p : batch) {
    const Entry& e = p.entry;
    Entry published = e;
    published.expires = redis_layout::expires_of(e.kind, e.at, link_.lifetimes);
    std::string member, message;
    try {
      member = redis_layout::index_member(e);
      message = redis_layout::message_of(published);
    } catch (const nlohmann::json::exception&) {
      member.clear();  // not UTF-8: no JSON message can carry it
    }
    if (member.empty() || !redis_layout::is_storable(e)) {
      if (p.done) p.done(false);
      continue;
    }
    p.command = {"EVAL",
                 std::string(redis_layout::kPutScript),
                 "2",
                 redis_layout::key_of(e.kind, e.iss, e.name),
                 std::string(redis_layout::kIndex),
                 std::to_string(e.at),
                 std::to_string(published.expires),
                 std::move(member),
                 std::move(message),
                 now,
                 std::string(redis_layout::kChannel)};
    ready.push_back(std::move(p));
  }
  batch = std::move(ready);
}

bool RedisWriter::write(std::vector<Pending>& batch, std::string& why) {
  for (const auto& p : batch) {
    if (!connection_->append(p.command)) {
      why = "cannot queue a command for redis: " + connection_->error();
      return false;  // nothing was sent yet: the whole batch is still to be written
    }
  }
  std::vector<Pending> lost;
  for (auto& p : batch) {
    if (!lost.empty()) {  // after a lost reply nothing more can be read from this connection
      lost.push_back(std::move(p));
      continue;
    }
    const RedisReply reply = connection_->reply();
    if (!reply) {
      why = "redis connection lost: " + connection_->error();
      lost.push_back(std::move(p));
      continue;
    }
    // The script answers the value in force; anything else is Redis refusing (OOM, READONLY, …).
    const bool stored = reply->type == REDIS_REPLY_INTEGER;
    if (!stored && why.empty()) why = describe_failure("redis refused a revocation", *connection_, reply.get());
    if (p.done) p.done(stored);
  }
  batch = std::move(lost);
  return why.empty();
}

void RedisWriter::write_with_one_retry(std::vector<Pending> batch, std::optional<Clock::time_point> deadline) {
  prepare(batch);
  if (batch.empty()) return;
  // The time each wait may take: kTimeout, or what is left before the deadline of stop().
  const auto patience = [&]() -> std::optional<std::chrono::milliseconds> {
    if (!deadline) return kTimeout;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
    if (left < 1ms) return std::nullopt;
    return std::min(left, std::chrono::milliseconds(kTimeout));
  };
  const auto ready = [&](std::string& why) {
    const auto timeout = patience();
    if (!timeout) {
      why = "stopping: no time left to write to redis";
      return false;
    }
    if (!connection_) return connect(why, *timeout);
    if (!deadline || connection_->set_timeout(*timeout)) return true;
    why = "cannot set the redis timeout: " + connection_->error();
    return false;
  };
  std::string why;
  if (!ready(why)) {
    fail(batch);
    set_up(false, why);
    return;
  }
  if (write(batch, why)) {
    set_up(true, {});
    return;
  }
  connection_.reset();
  if (!batch.empty()) {
    // The connection may have died while idle (Redis restarted, or its `timeout` closed it) and only
    // this batch found out. Sending again is safe: the script keeps the later value.
    std::string retry_why;
    if (ready(retry_why) && write(batch, retry_why)) {
      set_up(true, {});
      return;
    }
    connection_.reset();
    why = retry_why;
  }
  fail(batch);
  set_up(false, why);
}

void RedisWriter::run() {
  auto backoff = kFirstBackoff;
  auto next_probe = Clock::now();
  std::unique_lock lock(mutex_);
  for (;;) {
    const auto ready = [&] { return stopping_ || !queue_.empty(); };
    if (connection_ || stopping_)
      wake_.wait(lock, ready);
    else
      wake_.wait_until(lock, next_probe, ready);
    if (queue_.empty()) {
      if (stopping_) return;
      if (!connection_ && Clock::now() >= next_probe) {
        // No put is waiting, but the state must still come back up once Redis does.
        lock.unlock();
        std::string why;
        const bool ok = connect(why, kTimeout);
        set_up(ok, why);
        lock.lock();
        next_probe = Clock::now() + backoff;
        backoff = ok ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
      }
      continue;
    }
    std::vector<Pending> batch;
    while (!queue_.empty() && batch.size() < kMaxBatch) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    const std::optional<Clock::time_point> deadline =
        stopping_ ? std::optional<Clock::time_point>(stop_deadline_) : std::nullopt;
    lock.unlock();
    write_with_one_retry(std::move(batch), deadline);
    if (connection_) {
      backoff = kFirstBackoff;
    } else {
      next_probe = Clock::now() + backoff;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    lock.lock();
  }
}

}  // namespace hsmsignd::revocation
