// This host's Token Status Lists: one list per keyset and time window, an index for every JWT issued,
// and the bits of the revoked ones. Indices are reserved durably in blocks before they are handed out,
// so none is handed out twice, kill -9 included (a crash skips the rest of a block); a list is retired
// once every token it indexes has expired.
#pragma once

#include <cstdint>
#include <functional>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sqlite_db.h"

namespace hsmsignd::status_list {

struct Slot {
  std::string uri;
  std::int64_t idx = 0;
};

struct Snapshot {
  std::string uri, keyset;
  std::vector<std::uint8_t> bytes;  // every index reserved so far, so every token issued is covered
  std::uint64_t version = 0;        // changes whenever `bytes` does
};

class StatusLists {
 public:
  static constexpr std::int64_t kBlock = 65536;  // indices reserved per commit

  // `base_uri`: the lists' URIs are base_uri + "/" + keyset + "/" + window start + "-" + host(), where the
  // host id is made at the first start and kept in the file: hosts on one Redis that publish under the
  // same base never name each other's lists. `lifetime`: how long
  // after its issue a token can still be accepted (the longest max_ttl plus the clock tolerance).
  // Throws std::runtime_error when the file cannot be used.
  StatusLists(std::filesystem::path file, std::string base_uri, std::int64_t window, std::int64_t lifetime,
              std::int64_t now);

  // Where allocate() has the next block reserved: a thread that may wait for an fsync (the keyring's).
  // Without one, allocate() commits each block itself.
  void set_background(std::function<void(std::function<void()>)> post) { background_ = std::move(post); }

  // The Status List entry of a token of `keyset` issued at `now`; nullopt when no index could be reserved.
  // Commits (an fsync) only when nothing was reserved ahead.
  std::optional<Slot> allocate(std::string_view keyset, std::int64_t now);
  // Off the I/O thread: reserves a block for each keyset's list of the window of `now` when less than half
  // a block is left, and for the next window's when it begins within `ahead` seconds, so that the first
  // tokens of a window do not wait for an fsync.
  void prepare_windows(const std::vector<std::string>& keysets, std::int64_t now, std::int64_t ahead);
  // Sets the bit of a revoked token. URIs of other hosts' lists, and of retired lists, are ignored.
  void mark(std::string_view uri, std::int64_t idx);
  // The list whose id (the part of its URI after the base) is `id`.
  std::optional<Snapshot> find(std::string_view id) const;
  std::optional<std::uint64_t> version(std::string_view id) const;  // find()'s version, without the copy
  // Drops the lists whose every token has expired.
  void retire(std::int64_t now);

  const std::string& host() const { return host_; }
  std::size_t lists() const;

 private:
  struct List {
    std::string keyset;
    std::int64_t window_start = 0;
    std::int64_t next = 0, reserved = 0;
    std::vector<std::uint8_t> bytes;
    std::uint64_t version = 0;
    std::int64_t retires = 0;  // as recorded when its indices were reserved
    bool reserving = false;    // a background reservation is on its way
  };
  void prepare(std::string_view keyset, std::int64_t window_start);
  bool commit(const std::string& keyset, std::int64_t window_start, std::int64_t reserved, std::int64_t retires);
  static void extend(List& list, std::int64_t reserved, std::int64_t retires);
  List& list_of(std::string_view keyset, std::int64_t window_start);  // made if absent; under the lock
  std::string id_of(std::string_view keyset, std::int64_t window_start) const;
  std::int64_t retire_time(const List& list) const;  // by the current window and lifetime

  mutable std::mutex mutex_;  // allocate and find run on the I/O thread, mark on the stores' threads
  SqliteDb db_;
  std::string base_uri_;
  std::string host_;
  std::int64_t window_, lifetime_;
  std::map<std::string, List, std::less<>> lists_;  // by id
  std::function<void(std::function<void()>)> background_;
};

}  // namespace hsmsignd::status_list
