#include "revocation/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace hsmsignd::revocation {
namespace {

struct Finalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

Statement prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return nullptr;
  return Statement(s);
}

void bind_text(sqlite3_stmt* s, int index, const std::string& text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// A later not-before (or expiry) wins; revoking the same token twice changes nothing.
constexpr const char* kUpsert =
    "INSERT INTO revocations (kind, iss, name, at, expires) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (kind, iss, name) DO UPDATE SET at = max(at, excluded.at), expires = max(expires, excluded.expires)";

}  // namespace

SqliteStore::SqliteStore(std::filesystem::path file) : file_(std::move(file)) {
  // Created owner-only before SQLite opens it: the list names subjects and token ids.
  const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + file_.string() + ": " + std::strerror(errno));
  ::close(fd);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  db_.reset(db);
  if (rc != SQLITE_OK) throw std::runtime_error("cannot open " + file_.string() + ": " + error());
  sqlite3_busy_timeout(db_.get(), 5000);
  // WAL: a commit is one append and one fsync of the log; FULL: that fsync happens at every commit, so an
  // acknowledged revocation survives a power cut.
  if (!exec("PRAGMA journal_mode=WAL") || !exec("PRAGMA synchronous=FULL") ||
      !exec("CREATE TABLE IF NOT EXISTS revocations (kind INTEGER NOT NULL, iss TEXT NOT NULL, name TEXT NOT NULL, "
            "at INTEGER NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (kind, iss, name)) WITHOUT ROWID") ||
      !exec("CREATE INDEX IF NOT EXISTS revocations_expires ON revocations (expires)"))
    throw std::runtime_error(file_.string() + ": " + error());
}

SqliteStore::~SqliteStore() { stop(); }

bool SqliteStore::exec(const char* sql) { return sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

std::string SqliteStore::error() const { return db_ ? sqlite3_errmsg(db_.get()) : "out of memory"; }

void SqliteStore::start(Listener listener) {
  listener_ = std::move(listener);
  Statement all = prepare(db_.get(), "SELECT kind, iss, name, at, expires FROM revocations");
  if (!all) throw std::runtime_error(file_.string() + ": " + error());
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
    const int kind = sqlite3_column_int(all.get(), 0);
    if (kind < 0 || kind > static_cast<int>(Kind::keyset)) continue;
    const auto text = [&](int column) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(all.get(), column));
      return std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(all.get(), column)));
    };
    listener_.learned(Entry{static_cast<Kind>(kind), text(1), text(2), sqlite3_column_int64(all.get(), 3),
                            sqlite3_column_int64(all.get(), 4)});
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(file_.string() + ": " + error());
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
  if (!exec("BEGIN IMMEDIATE")) return false;
  Statement upsert = prepare(db_.get(), kUpsert);
  bool ok = upsert != nullptr;
  for (const auto& p : batch) {
    if (!ok) break;
    sqlite3_bind_int(upsert.get(), 1, static_cast<int>(p.entry.kind));
    bind_text(upsert.get(), 2, p.entry.iss);
    bind_text(upsert.get(), 3, p.entry.name);
    sqlite3_bind_int64(upsert.get(), 4, p.entry.at);
    sqlite3_bind_int64(upsert.get(), 5, p.entry.expires);
    ok = sqlite3_step(upsert.get()) == SQLITE_DONE;
    sqlite3_reset(upsert.get());
  }
  upsert.reset();
  if (ok && exec("COMMIT")) return true;
  exec("ROLLBACK");
  return false;
}

void SqliteStore::run() {
  for (;;) {
    std::deque<Pending> batch;
    std::int64_t purge_before = 0;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || purge_before_ != 0; });
      if (queue_.empty() && purge_before_ == 0) return;  // stopping, and nothing left
      batch.swap(queue_);
      std::swap(purge_before, purge_before_);
    }
    if (!batch.empty()) {
      const bool ok = write(batch);
      if (ok == failing_) {
        failing_ = !ok;
        listener_.state(ok, ok ? std::string() : "writing " + file_.string() + ": " + error());
      }
      for (auto& p : batch) p.done(ok);
    }
    if (purge_before != 0) {
      Statement purge = prepare(db_.get(), "DELETE FROM revocations WHERE expires < ?1");
      if (purge) {
        sqlite3_bind_int64(purge.get(), 1, purge_before);
        sqlite3_step(purge.get());
      }
    }
  }
}

}  // namespace hsmsignd::revocation
