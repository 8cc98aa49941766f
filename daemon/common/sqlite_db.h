// A SQLite database file the daemon owns: created 0600, WAL with synchronous=FULL, so that a commit
// that returned is on disk (one append and one fsync of the log) and survives kill -9 and power loss.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <string>

namespace hsmsignd {

struct SqliteFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using SqliteStatement = std::unique_ptr<sqlite3_stmt, SqliteFinalize>;

class SqliteDb {
 public:
  // Opens or creates `file` and applies the pragmas. Throws std::runtime_error naming the file.
  explicit SqliteDb(std::filesystem::path file);

  bool exec(const char* sql);
  SqliteStatement prepare(const char* sql);  // nullptr on error
  std::string error() const;
  const std::filesystem::path& file() const { return file_; }

  static void bind_text(sqlite3_stmt* s, int index, const std::string& text);
  static std::string column_text(sqlite3_stmt* s, int column);

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::filesystem::path file_;
  std::unique_ptr<sqlite3, Close> db_;
};

}  // namespace hsmsignd
