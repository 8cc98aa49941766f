#include "config/section.h"

#include <utility>

#include "config/config_error.h"

namespace hsmsignd::config {
namespace {

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::size_t line_of_node(const toml::node& node) { return node.source().begin.line; }

// True when `text` is spelled like a duration but parse_duration refused it: it must have overflowed.
bool looks_like_duration(std::string_view text) {
  if (text.size() < 2 || std::string_view("smhd").find(text.back()) == std::string_view::npos) return false;
  for (const char c : text.substr(0, text.size() - 1))
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

Section::Section(const toml::table& table, std::string path, const Origin& origin)
    : table_(&table), path_(std::move(path)), origin_(&origin) {}

std::string Section::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

// The root table has no line of its own: toml++ says 1, which would point at an unrelated line.
std::size_t Section::line() const { return path_.empty() ? 0 : line_of_node(*table_); }

std::size_t Section::line_of(std::string_view key) const {
  const toml::node* node = find(key);
  return node ? line_of_node(*node) : line();
}

bool Section::has(std::string_view key) const { return find(key) != nullptr; }

const toml::node* Section::find(std::string_view key) const { return table_->get(key); }

void Section::fail(std::string_view key, std::string_view message) const {
  throw ConfigError(origin_->file, line_of(key), key_path(key), message);
}

void Section::fail_element(std::string_view key, std::size_t index, std::string_view message) const {
  const toml::array* items = array(key);
  const std::string element = key_path(key) + "[" + std::to_string(index) + "]";
  if (items && index < items->size()) fail_at(*items->get(index), element, message);
  throw ConfigError(origin_->file, line_of(key), element, message);
}

void Section::fail_at(const toml::node& node, const std::string& key, std::string_view message) const {
  throw ConfigError(origin_->file, line_of_node(node), key, message);
}

void Section::wrong_type(const toml::node& node, const std::string& key, std::string_view expected) const {
  fail_at(node, key, "must be " + std::string(expected) + ", not " + std::string(type_name(node.type())));
}

void Section::allow_only(std::initializer_list<std::string_view> known) const {
  // toml++ iterates keys in sorted order; report the first unknown one in the file instead.
  const toml::key* first_unknown = nullptr;
  for (auto&& [key, value] : *table_) {
    bool is_known = false;
    for (const std::string_view k : known) is_known = is_known || key.str() == k;
    if (!is_known && (!first_unknown || key.source().begin.line < first_unknown->source().begin.line))
      first_unknown = &key;
  }
  if (!first_unknown) return;

  std::string allowed;
  for (const std::string_view k : known) allowed += (allowed.empty() ? "" : ", ") + std::string(k);
  const std::string where = path_.empty() ? "at the top level" : "in " + path_;
  throw ConfigError(origin_->file, first_unknown->source().begin.line, key_path(first_unknown->str()),
                    "unknown key " + where + " (known: " + allowed + ")");
}

std::optional<std::string> Section::string(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  if (const auto* value = node->as_string()) return value->get();
  wrong_type(*node, key_path(key), "a string");
}

std::optional<std::int64_t> Section::integer(std::string_view key, std::int64_t min, std::int64_t max) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  const auto* value = node->as_integer();
  if (!value) wrong_type(*node, key_path(key), "an integer");
  if (value->get() < min || value->get() > max)
    fail(key, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                  std::to_string(value->get()));
  return value->get();
}

std::optional<bool> Section::boolean(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  if (const auto* value = node->as_boolean()) return value->get();
  wrong_type(*node, key_path(key), "true or false");
}

std::optional<Duration> Section::duration(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  const auto* value = node->as_string();
  if (!value) wrong_type(*node, key_path(key), R"(a duration string such as "15m")");
  const std::string& text = value->get();
  const std::optional<Duration> parsed = parse_duration(text);
  if ((!parsed && looks_like_duration(text)) || (parsed && *parsed > kLongestDuration))
    fail(key, in_quotes(text) + " is too long; at most " + format_duration(kLongestDuration));
  if (!parsed) fail(key, "not a duration (" + in_quotes(text) + R"(); use e.g. "90s", "15m", "1h", "30d")");
  return parsed;
}

std::optional<std::filesystem::path> Section::path(std::string_view key) const {
  std::optional<std::string> text = string(key);
  if (!text) return std::nullopt;
  if (text->empty()) fail(key, "must not be empty");
  const std::filesystem::path given(*text);
  // No lexical normalisation: "dir/../x" through a symlinked dir means what the kernel says it means.
  return given.is_absolute() ? given : origin_->base_dir / given;
}

const toml::array* Section::array(std::string_view key) const {
  const toml::node* node = find(key);
  return node ? node->as_array() : nullptr;
}

std::optional<std::vector<std::string>> Section::strings(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  const toml::array* items = node->as_array();
  if (!items) wrong_type(*node, key_path(key), "an array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const toml::node& item = *items->get(i);
    const auto* value = item.as_string();
    if (!value) wrong_type(item, key_path(key) + "[" + std::to_string(i) + "]", "a string");
    out.push_back(value->get());
  }
  return out;
}

std::optional<std::vector<std::int64_t>> Section::integers(std::string_view key, std::int64_t min,
                                                           std::int64_t max) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  const toml::array* items = node->as_array();
  if (!items) wrong_type(*node, key_path(key), "an array of integers");
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const toml::node& item = *items->get(i);
    const auto* value = item.as_integer();
    if (!value) wrong_type(item, key_path(key) + "[" + std::to_string(i) + "]", "an integer");
    if (value->get() < min || value->get() > max)
      fail_element(key, i, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                               std::to_string(value->get()));
    out.push_back(value->get());
  }
  return out;
}

std::optional<Section> Section::table(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  const toml::table* value = node->as_table();
  if (!value) wrong_type(*node, key_path(key), "a table ([" + std::string(key) + "])");
  return Section(*value, key_path(key), *origin_);
}

std::vector<Section> Section::tables(std::string_view key) const {
  const toml::node* node = find(key);
  if (!node) return {};
  const toml::array* items = node->as_array();
  if (items && items->empty()) return {};  // "keyset = []" is as good as absent; the caller decides
  if (!items || !items->is_array_of_tables())
    wrong_type(*node, key_path(key), "an array of tables ([[" + std::string(key) + "]])");
  std::vector<Section> out;
  for (std::size_t i = 0; i < items->size(); ++i)
    out.emplace_back(*items->get(i)->as_table(), key_path(key) + "[" + std::to_string(i) + "]", *origin_);
  return out;
}

}  // namespace hsmsignd::config
