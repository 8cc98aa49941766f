#include "revocation/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace hsmsignd::revocation {
namespace {

// A later not-before (or expiry) wins; revoking the same token twice changes nothing.
constexpr const char* kUpsert =
    "INSERT INTO revocations (kind, iss, name, at, expires, status_uri, status_idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (kind, iss, name) DO UPDATE SET at = max(at, excluded.at), expires = max(expires, excluded.expires), "
    "status_uri = CASE WHEN excluded.status_idx >= 0 THEN excluded.status_uri ELSE status_uri END, "
    "status_idx = max(status_idx, excluded.status_idx)";

}  // namespace

SqliteStore::SqliteStore(std::filesystem::path file) : db_(std::move(file)) {
  if (!db_.exec("CREATE TABLE IF NOT EXISTS revocations (kind INTEGER NOT NULL, iss TEXT NOT NULL, name TEXT NOT NULL, "
                "at INTEGER NOT NULL, expires INTEGER NOT NULL, status_uri TEXT NOT NULL DEFAULT '', "
                "status_idx INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (kind, iss, name)) WITHOUT ROWID") ||
      !db_.exec("CREATE INDEX IF NOT EXISTS revocations_expires ON revocations (expires)") ||
      !db_.exec("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL NOT NULL)"))
    throw std::runtime_error(db_.file().string() + ": " + db_.error());
}

SqliteStore::~SqliteStore() { stop(); }

void SqliteStore::start(Listener listener) {
  listener_ = std::move(listener);
  SqliteStatement all = db_.prepare("SELECT kind, iss, name, at, expires, status_uri, status_idx FROM revocations");
  if (!all) throw std::runtime_error(db_.file().string() + ": " + db_.error());
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
    const int kind = sqlite3_column_int(all.get(), 0);
    if (kind < 0 || kind > static_cast<int>(Kind::keyset)) continue;
    listener_.learned(Entry{static_cast<Kind>(kind), SqliteDb::column_text(all.get(), 1),
                            SqliteDb::column_text(all.get(), 2), sqlite3_column_int64(all.get(), 3),
                            sqlite3_column_int64(all.get(), 4), SqliteDb::column_text(all.get(), 5),
                            sqlite3_column_int64(all.get(), 6)});
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(db_.file().string() + ": " + db_.error());
  listener_.state(true, {});
  thread_ = std::thread([this] { run(); });
}

void SqliteStore::put(Entry entry, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(entry), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(false);
}

void SqliteStore::purge(std::int64_t now) {
  std::lock_guard lock(mutex_);
  purge_before_ = std::max(purge_before_, now);
  wake_.notify_one();
}

void SqliteStore::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

bool SqliteStore::write(const std::deque<Pending>& batch) {
  if (!db_.exec("BEGIN IMMEDIATE")) {
    last_error_ = db_.error();
    return false;
  }
  SqliteStatement upsert = db_.prepare(kUpsert);
  bool ok = upsert != nullptr;
  for (const auto& p : batch) {
    if (!ok) break;
    sqlite3_bind_int(upsert.get(), 1, static_cast<int>(p.entry.kind));
    SqliteDb::bind_text(upsert.get(), 2, p.entry.iss);
    SqliteDb::bind_text(upsert.get(), 3, p.entry.name);
    sqlite3_bind_int64(upsert.get(), 4, p.entry.at);
    sqlite3_bind_int64(upsert.get(), 5, p.entry.expires);
    SqliteDb::bind_text(upsert.get(), 6, p.entry.status_uri);
    sqlite3_bind_int64(upsert.get(), 7, p.entry.status_idx);
    ok = sqlite3_step(upsert.get()) == SQLITE_DONE;
    sqlite3_reset(upsert.get());
  }
  upsert.reset();
  if (ok && db_.exec("COMMIT")) return true;
  // The reason, before ROLLBACK (which fails when SQLite has already rolled back) replaces it.
  last_error_ = db_.error();
  db_.exec("ROLLBACK");
  return false;
}

void SqliteStore::probe() {
  const bool ok = db_.exec("BEGIN IMMEDIATE") && db_.exec("INSERT OR REPLACE INTO probe (id, at) VALUES (1, julianday('now'))") &&
                  db_.exec("COMMIT");
  if (!ok) {
    last_error_ = db_.error();
    db_.exec("ROLLBACK");
  }
  report(ok);
}

void SqliteStore::report(bool ok) {
  if (ok != failing_) return;
  failing_ = !ok;
  listener_.state(ok, ok ? std::string() : "writing " + db_.file().string() + ": " + last_error_);
}

void SqliteStore::run() {
  for (;;) {
    std::deque<Pending> batch;
    std::int64_t purge_before = 0;
    {
      std::unique_lock lock(mutex_);
      const auto ready = [&] { return stopping_ || !queue_.empty() || purge_before_ != 0; };
      // While writes fail, a small write once a second tells when the disk works again, so that the daemon
      // is seen healthy again without waiting for someone's revocation.
      if (!failing_) {
        wake_.wait(lock, ready);
      } else if (!wake_.wait_for(lock, std::chrono::seconds(1), ready)) {
        lock.unlock();
        probe();
        continue;
      }
      if (queue_.empty() && purge_before_ == 0) return;  // stopping, and nothing left
      batch.swap(queue_);
      std::swap(purge_before, purge_before_);
    }
    if (!batch.empty()) {
      const bool ok = write(batch);
      report(ok);
      for (auto& p : batch) p.done(ok);
    }
    if (purge_before != 0) {
      // Not a probe: a DELETE that matches nothing writes nothing, so it proves nothing about the disk.
      if (SqliteStatement purge = db_.prepare("DELETE FROM revocations WHERE expires < ?1")) {
        sqlite3_bind_int64(purge.get(), 1, purge_before);
        sqlite3_step(purge.get());
      }
    }
  }
}

}  // namespace hsmsignd::revocation
