// Writes a flat JSON object straight into a string, for the answers, claims and audit records: building
// an nlohmann DOM only to serialise it at once costs more than the rest of a request's bookkeeping. The
// output is what nlohmann's dump() gives for the same members.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hsmsignd {

// `s` as a JSON string literal. Well-formed UTF-8 passes through; each ill-formed sequence becomes
// U+FFFD, so that no byte a peer sent (a request target, a header) can make a line that is not JSON.
void append_json_string(std::string& out, std::string_view s);

class JsonObjectWriter {
 public:
  explicit JsonObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  // Members without the braces, appended to `out` (after a comma unless `out` is empty): text to be
  // spliced into an object written elsewhere, such as an audit record's.
  static JsonObjectWriter members(std::string& out) { return JsonObjectWriter(out, out.empty()); }
  JsonObjectWriter& string(std::string_view key, std::string_view value) {
    append_json_string(member(key), value);
    return *this;
  }
  JsonObjectWriter& number(std::string_view key, std::int64_t value) {
    member(key) += std::to_string(value);
    return *this;
  }
  JsonObjectWriter& boolean(std::string_view key, bool value) {
    member(key) += value ? "true" : "false";
    return *this;
  }
  JsonObjectWriter& strings(std::string_view key, const std::vector<std::string>& values) {
    std::string& out = member(key);
    out += '[';
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i) out += ',';
      append_json_string(out, values[i]);
    }
    out += ']';
    return *this;
  }
  // A value that is already JSON text.
  JsonObjectWriter& json(std::string_view key, std::string_view value) {
    member(key) += value;
    return *this;
  }
  void close() { out_ += '}'; }

 private:
  JsonObjectWriter(std::string& out, bool first) : out_(out), first_(first) {}
  std::string& member(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    append_json_string(out_, key);
    out_ += ':';
    return out_;
  }
  std::string& out_;
  bool first_ = true;
};

}  // namespace hsmsignd
