// A read-only view of one TOML table that knows where it is: every value it hands out has the type
// asked for, and every refusal is a ConfigError naming the file, the line and the dotted key.
// Internal to the config layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "config/duration.h"

namespace hsmsignd::config {

// The file being read: its name as the operator gave it (for messages) and the folder relative
// paths start from (absolute).
struct Origin {
  std::filesystem::path file;
  std::filesystem::path base_dir;
};

class Section {
 public:
  // `path` is the dotted key of `table` itself: "" for the root, "token", "keyset[0]".
  Section(const toml::table& table, std::string path, const Origin& origin);

  std::string key_path(std::string_view key) const;
  std::size_t line() const;  // 0 for the root
  // The line of `key`'s value, or the table's own line when the key is absent (a missing key, or a
  // default that breaks a rule, belongs to its table).
  std::size_t line_of(std::string_view key) const;
  bool has(std::string_view key) const;

  [[noreturn]] void fail(std::string_view key, std::string_view message) const;
  // For one element of an array: the element's own line, and "key[index]".
  [[noreturn]] void fail_element(std::string_view key, std::size_t index, std::string_view message) const;

  // Refuses any key not listed: a typo must not silently fall back to a weaker default.
  void allow_only(std::initializer_list<std::string_view> known) const;

  // Each returns nullopt when the key is absent and refuses a value of another TOML type.
  std::optional<std::string> string(std::string_view key) const;
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max) const;
  std::optional<bool> boolean(std::string_view key) const;
  // Refuses what parse_duration refuses, and anything over kLongestDuration.
  std::optional<Duration> duration(std::string_view key) const;
  // Non-empty; relative paths resolve against the config file's folder.
  std::optional<std::filesystem::path> path(std::string_view key) const;
  std::optional<std::vector<std::string>> strings(std::string_view key) const;
  std::optional<std::vector<std::int64_t>> integers(std::string_view key, std::int64_t min, std::int64_t max) const;

  std::optional<Section> table(std::string_view key) const;
  // [[key]] entries; an absent key gives none.
  std::vector<Section> tables(std::string_view key) const;

  // Ten years. Longer is a typo, and would overflow the nanosecond clocks the lifecycle adds it to.
  static constexpr Duration kLongestDuration{3650 * 86400};

 private:
  const toml::node* find(std::string_view key) const;
  const toml::array* array(std::string_view key) const;
  [[noreturn]] void fail_at(const toml::node& node, const std::string& key, std::string_view message) const;
  [[noreturn]] void wrong_type(const toml::node& node, const std::string& key, std::string_view expected) const;

  const toml::table* table_;
  std::string path_;
  const Origin* origin_;
};

}  // namespace hsmsignd::config
