// The embedded store: one SQLite file in the state folder, written by one thread in batches, so that a
// flood of revocations costs one commit (one fsync) per batch, not one each.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/sqlite_db.h"
#include "revocation/store.h"

namespace hsmsignd::revocation {

class SqliteStore final : public Store {
 public:
  // Opens (or creates) the database. Throws std::runtime_error naming the file.
  explicit SqliteStore(std::filesystem::path file);
  ~SqliteStore() override;

  void start(Listener listener) override;
  void put(Entry entry, std::function<void(bool durable)> done) override;
  void purge(std::int64_t now) override;
  void stop() override;

 private:
  struct Pending {
    Entry entry;
    std::function<void(bool)> done;
  };
  void run();
  bool write(const std::deque<Pending>& batch);
  void report(bool ok);  // tells the listener when writing starts or stops working
  void probe();          // a write of nothing that matters, to see whether writing works again

  SqliteDb db_;
  Listener listener_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::int64_t purge_before_ = 0;  // a purge asked for and not yet done
  bool stopping_ = false;
  bool failing_ = false;  // the last write failed: the state is down until one works
  std::string last_error_;
  std::thread thread_;
};

}  // namespace hsmsignd::revocation
