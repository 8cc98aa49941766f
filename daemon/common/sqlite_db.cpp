#include "common/sqlite_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace hsmsignd {

SqliteDb::SqliteDb(std::filesystem::path file) : file_(std::move(file)) {
  // Created owner-only before SQLite opens it: what the daemon keeps names subjects and token ids.
  const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + file_.string() + ": " + std::strerror(errno));
  ::close(fd);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  db_.reset(db);
  if (rc != SQLITE_OK) throw std::runtime_error("cannot open " + file_.string() + ": " + error());
  sqlite3_busy_timeout(db_.get(), 5000);
  if (!exec("PRAGMA journal_mode=WAL") || !exec("PRAGMA synchronous=FULL"))
    throw std::runtime_error(file_.string() + ": " + error());
}

bool SqliteDb::exec(const char* sql) { return sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

SqliteStatement SqliteDb::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_.get(), sql, -1, &s, nullptr) != SQLITE_OK) return nullptr;
  return SqliteStatement(s);
}

std::string SqliteDb::error() const { return db_ ? sqlite3_errmsg(db_.get()) : "out of memory"; }

void SqliteDb::bind_text(sqlite3_stmt* s, int index, const std::string& text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

std::string SqliteDb::column_text(sqlite3_stmt* s, int column) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, column));
  return std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, column)));
}

}  // namespace hsmsignd
