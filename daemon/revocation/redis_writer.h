// Stores entries in Redis from one thread with its own connection. Puts that queue up while a write
// is under way go together in one pipeline, so a flood of revocations pays one round trip per batch,
// not per entry. Each entry is one EVAL of the put script (redis_layout.h): the key, its index member
// and the PUBLISH happen atomically, and the script is idempotent, which is what lets a batch whose
// connection broke be sent again once on a fresh connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "revocation/entry.h"
#include "revocation/redis_connection.h"
#include "revocation/redis_link.h"

namespace hsmsignd::revocation {

class RedisWriter {
 public:
  // `link` must outlive the writer.
  RedisWriter(const RedisLink& link, RedisLinkReport report);
  ~RedisWriter();
  RedisWriter(const RedisWriter&) = delete;
  RedisWriter& operator=(const RedisWriter&) = delete;

  // Starts the thread, which connects at once (and again, with backoff, while Redis is down) so that
  // the first put finds a connection waiting and a lost one is reported without waiting for a put.
  void start();
  // done(true) on the writer thread once Redis answered the entry's script; done(false) when it could
  // not be stored, and at once after stop().
  void put(Entry entry, std::function<void(bool durable)> done);
  // Writes what is queued, for about a second at most (done(false) for the rest), then ends the thread.
  void stop();

 private:
  struct Pending {
    Entry entry;
    std::function<void(bool)> done;
    std::vector<std::string> command;  // the EVAL, made once on the writer thread
  };
  static void fail(std::vector<Pending>& batch);
  void run();
  // Makes each entry's command; an entry no other host could read is refused here.
  void prepare(std::vector<Pending>& batch);
  bool connect(std::string& why, std::chrono::milliseconds timeout);
  // Sends the batch in one pipeline and finishes every entry Redis answered; those whose answer was
  // lost with the connection stay in `batch`. False, with the reason, when anything failed.
  bool write(std::vector<Pending>& batch, std::string& why);
  // `deadline` once stopping: no read, write or connect may wait past it.
  void write_with_one_retry(std::vector<Pending> batch, std::optional<std::chrono::steady_clock::time_point> deadline);
  void set_up(bool up, const std::string& reason);

  const RedisLink& link_;
  const RedisLinkReport report_;
  std::optional<RedisConnection> connection_;  // writer thread only
  bool up_ = true;                              // writer thread only: as last reported

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_;
  std::thread thread_;
};

}  // namespace hsmsignd::revocation
