#include "status_list/status_lists.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "status_list/encoding.h"

namespace hsmsignd::status_list {
namespace {

// Eight hex digits: two hosts of one deployment meeting by chance is a 1 in 4 billion event.
std::string new_host_id() {
  std::random_device random;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(random()));
  return text;
}

}  // namespace

std::string StatusLists::id_of(std::string_view keyset, std::int64_t window_start) const {
  return std::string(keyset) + "/" + std::to_string(window_start) + "-" + host_;
}

StatusLists::StatusLists(std::filesystem::path file, std::string base_uri, std::int64_t window, std::int64_t lifetime,
                         std::int64_t now)
    : db_(std::move(file)), base_uri_(std::move(base_uri)), window_(window), lifetime_(lifetime) {
  if (!db_.exec("CREATE TABLE IF NOT EXISTS status_lists (keyset TEXT NOT NULL, window_start INTEGER NOT NULL, "
                "reserved INTEGER NOT NULL, retires INTEGER NOT NULL, PRIMARY KEY (keyset, window_start)) WITHOUT ROWID"))
    throw std::runtime_error(db_.file().string() + ": " + db_.error());
  if (!db_.exec("CREATE TABLE IF NOT EXISTS host (id TEXT NOT NULL)"))
    throw std::runtime_error(db_.file().string() + ": " + db_.error());
  {
    SqliteStatement read = db_.prepare("SELECT id FROM host");
    if (read && sqlite3_step(read.get()) == SQLITE_ROW) host_ = SqliteDb::column_text(read.get(), 0);
  }
  if (host_.empty()) {
    host_ = new_host_id();
    SqliteStatement write = db_.prepare("INSERT INTO host (id) VALUES (?1)");
    if (!write) throw std::runtime_error(db_.file().string() + ": " + db_.error());
    SqliteDb::bind_text(write.get(), 1, host_);
    if (sqlite3_step(write.get()) != SQLITE_DONE) throw std::runtime_error(db_.file().string() + ": " + db_.error());
  }
  SqliteStatement all = db_.prepare("SELECT keyset, window_start, reserved, retires FROM status_lists");
  if (!all) throw std::runtime_error(db_.file().string() + ": " + db_.error());
  while (sqlite3_step(all.get()) == SQLITE_ROW) {
    List l;
    l.keyset = SqliteDb::column_text(all.get(), 0);
    l.window_start = sqlite3_column_int64(all.get(), 1);
    // Indices below the reservation may have been handed out before a crash: go on after it.
    l.next = l.reserved = sqlite3_column_int64(all.get(), 2);
    l.bytes.assign(static_cast<std::size_t>((l.reserved + 7) / 8), 0);
    l.retires = sqlite3_column_int64(all.get(), 3);
    lists_.emplace(id_of(l.keyset, l.window_start), std::move(l));
  }
  all.reset();
  retire(now);
}

// The only write of a reservation; max() in SQL, so two reservations of one list never go backwards.
bool StatusLists::commit(const std::string& keyset, std::int64_t window_start, std::int64_t reserved,
                         std::int64_t retires) {
  SqliteStatement up = db_.prepare(
      "INSERT INTO status_lists (keyset, window_start, reserved, retires) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (keyset, window_start) DO UPDATE SET reserved = max(reserved, excluded.reserved), "
      "retires = max(retires, excluded.retires)");
  if (!up) return false;
  SqliteDb::bind_text(up.get(), 1, keyset);
  sqlite3_bind_int64(up.get(), 2, window_start);
  sqlite3_bind_int64(up.get(), 3, reserved);
  sqlite3_bind_int64(up.get(), 4, retires);
  return sqlite3_step(up.get()) == SQLITE_DONE;
}

void StatusLists::extend(List& list, std::int64_t reserved, std::int64_t retires) {
  list.retires = std::max(list.retires, retires);
  if (reserved <= list.reserved) return;
  list.reserved = reserved;
  list.bytes.resize(static_cast<std::size_t>((list.reserved + 7) / 8), 0);
  ++list.version;
}

StatusLists::List& StatusLists::list_of(std::string_view keyset, std::int64_t window_start) {
  const std::string id = id_of(keyset, window_start);
  auto it = lists_.find(id);
  if (it == lists_.end()) {
    List l;
    l.keyset = std::string(keyset);
    l.window_start = window_start;
    it = lists_.emplace(id, std::move(l)).first;
  }
  return it->second;
}

void StatusLists::prepare(std::string_view keyset, std::int64_t window_start) {
  std::int64_t reserved, retires;
  {
    std::lock_guard lock(mutex_);
    List& list = list_of(keyset, window_start);
    list.reserving = false;
    if (list.reserved - list.next >= kBlock / 2) return;
    reserved = list.reserved + kBlock;
    // Kept with the list: a shorter window or max_ttl after a restart must not retire it before its tokens.
    retires = std::max(list.retires, retire_time(list));
  }
  // The fsync without the lock: the I/O thread goes on handing out what is already reserved.
  if (!commit(std::string(keyset), window_start, reserved, retires)) return;
  std::lock_guard lock(mutex_);
  extend(list_of(keyset, window_start), reserved, retires);
}

void StatusLists::prepare_windows(const std::vector<std::string>& keysets, std::int64_t now, std::int64_t ahead) {
  const std::int64_t window_start = now - now % window_;
  for (const auto& keyset : keysets) {
    prepare(keyset, window_start);
    if (now + ahead >= window_start + window_) prepare(keyset, window_start + window_);
  }
}

// The last token of a window is issued just before its end and accepted for `lifetime` after.
std::int64_t StatusLists::retire_time(const List& list) const { return list.window_start + window_ + lifetime_; }

std::optional<Slot> StatusLists::allocate(std::string_view keyset, std::int64_t now) {
  const std::int64_t window_start = now - now % window_;
  std::lock_guard lock(mutex_);
  List& list = list_of(keyset, window_start);
  if (list.next >= list.reserved) {
    // Nothing reserved ahead (a burst faster than the background, or no background): commit here.
    const std::int64_t reserved = list.reserved + kBlock, retires = std::max(list.retires, retire_time(list));
    if (!commit(list.keyset, window_start, reserved, retires)) return std::nullopt;
    extend(list, reserved, retires);
  }
  Slot slot{base_uri_ + "/" + id_of(keyset, window_start), list.next++};
  if (background_ && !list.reserving && list.reserved - list.next < kBlock / 2) {
    list.reserving = true;
    background_([this, keyset = list.keyset, window_start] { prepare(keyset, window_start); });
  }
  return slot;
}

void StatusLists::mark(std::string_view uri, std::int64_t idx) {
  if (idx < 0 || !uri.starts_with(base_uri_) || uri.size() <= base_uri_.size() + 1 || uri[base_uri_.size()] != '/') return;
  std::lock_guard lock(mutex_);
  auto it = lists_.find(uri.substr(base_uri_.size() + 1));
  if (it == lists_.end() || idx >= it->second.reserved) return;
  const auto byte = it->second.bytes[static_cast<std::size_t>(idx / 8)];
  set_bit(it->second.bytes, static_cast<std::uint64_t>(idx));
  if (it->second.bytes[static_cast<std::size_t>(idx / 8)] != byte) ++it->second.version;
}

std::optional<Snapshot> StatusLists::find(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto it = lists_.find(id);
  if (it == lists_.end()) return std::nullopt;
  return Snapshot{base_uri_ + "/" + it->first, it->second.keyset, it->second.bytes, it->second.version};
}

std::optional<std::uint64_t> StatusLists::version(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto it = lists_.find(id);
  if (it == lists_.end()) return std::nullopt;
  return it->second.version;
}

void StatusLists::retire(std::int64_t now) {
  std::lock_guard lock(mutex_);
  for (auto it = lists_.begin(); it != lists_.end();) {
    if (std::max(it->second.retires, retire_time(it->second)) < now) {
      if (SqliteStatement del = db_.prepare("DELETE FROM status_lists WHERE keyset = ?1 AND window_start = ?2")) {
        SqliteDb::bind_text(del.get(), 1, it->second.keyset);
        sqlite3_bind_int64(del.get(), 2, it->second.window_start);
        sqlite3_step(del.get());
      }
      it = lists_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t StatusLists::lists() const {
  std::lock_guard lock(mutex_);
  return lists_.size();
}

}  // namespace hsmsignd::status_list
