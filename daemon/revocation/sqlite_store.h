// The embedded store: one SQLite file in the state folder (WAL, synchronous=FULL), written by one
// thread in batches, so that a flood of revocations costs one commit (one fsync) per batch, not each.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "revocation/store.h"

namespace hsmsignd::revocation {

class SqliteStore final : public Store {
 public:
  // Opens (or creates, mode 0600) the database. Throws std::runtime_error naming the file.
  explicit SqliteStore(std::filesystem::path file);
  ~SqliteStore() override;

  void start(Listener listener) override;
  void put(Entry entry, std::function<void(bool durable)> done) override;
  void purge(std::int64_t now) override;
  void stop() override;

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  struct Pending {
    Entry entry;
    std::function<void(bool)> done;
  };
  void run();
  bool write(const std::deque<Pending>& batch);
  bool exec(const char* sql);
  std::string error() const;

  std::filesystem::path file_;
  std::unique_ptr<sqlite3, Close> db_;
  Listener listener_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::int64_t purge_before_ = 0;  // a purge asked for and not yet done
  bool stopping_ = false;
  bool failing_ = false;  // the last write failed: the state is down until one works
  std::thread thread_;
};

}  // namespace hsmsignd::revocation
