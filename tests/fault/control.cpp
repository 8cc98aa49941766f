#include "control.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace hsmsignd::fault {
namespace {

struct RvName {
  std::string_view name;
  CK_RV rv;
};

#define HSMSIGND_FAULT_RV(name) RvName{#name, name}
constexpr RvName kRvNames[] = {
    HSMSIGND_FAULT_RV(CKR_GENERAL_ERROR),          HSMSIGND_FAULT_RV(CKR_FUNCTION_FAILED),
    HSMSIGND_FAULT_RV(CKR_HOST_MEMORY),            HSMSIGND_FAULT_RV(CKR_DEVICE_ERROR),
    HSMSIGND_FAULT_RV(CKR_DEVICE_MEMORY),          HSMSIGND_FAULT_RV(CKR_DEVICE_REMOVED),
    HSMSIGND_FAULT_RV(CKR_TOKEN_NOT_PRESENT),      HSMSIGND_FAULT_RV(CKR_TOKEN_NOT_RECOGNIZED),
    HSMSIGND_FAULT_RV(CKR_SLOT_ID_INVALID),        HSMSIGND_FAULT_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    HSMSIGND_FAULT_RV(CKR_SESSION_HANDLE_INVALID), HSMSIGND_FAULT_RV(CKR_SESSION_CLOSED),
    HSMSIGND_FAULT_RV(CKR_SESSION_COUNT),          HSMSIGND_FAULT_RV(CKR_USER_NOT_LOGGED_IN),
    HSMSIGND_FAULT_RV(CKR_OPERATION_ACTIVE),       HSMSIGND_FAULT_RV(CKR_OPERATION_NOT_INITIALIZED),
    HSMSIGND_FAULT_RV(CKR_KEY_HANDLE_INVALID),     HSMSIGND_FAULT_RV(CKR_OBJECT_HANDLE_INVALID),
    HSMSIGND_FAULT_RV(CKR_PIN_INCORRECT),          HSMSIGND_FAULT_RV(CKR_PIN_LOCKED),
    HSMSIGND_FAULT_RV(CKR_FUNCTION_CANCELED),      HSMSIGND_FAULT_RV(CKR_MECHANISM_INVALID),
};
#undef HSMSIGND_FAULT_RV

template <class T>
std::optional<T> parse_number(std::string_view text, int base = 10) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  while (true) {
    const auto start = line.find_first_not_of(" \t\r");
    if (start == std::string_view::npos) return out;
    line.remove_prefix(start);
    const auto end = line.find_first_of(" \t\r");
    out.push_back(line.substr(0, end));
    if (end == std::string_view::npos) return out;
    line.remove_prefix(end);
  }
}

// One directive, or the reason it was left out.
std::optional<Rule> parse_rule(const std::vector<std::string_view>& w, std::string& why) {
  const auto function = [&](std::string_view name, std::optional<Fn>& out) {
    if (name == "*") return true;
    out = function_named(name);
    if (!out) why = "unknown function \"" + std::string(name) + "\"";
    return out.has_value();
  };
  const auto count = [&](std::size_t at, Rule& rule) {
    if (w.size() <= at) return true;
    rule.remaining = parse_number<unsigned long>(w[at]);
    if (!rule.remaining) why = "COUNT is not a number: \"" + std::string(w[at]) + "\"";
    return rule.remaining.has_value();
  };
  const auto arity = [&](std::size_t min, std::size_t max, const char* usage) {
    if (w.size() >= min && w.size() <= max) return true;
    why = std::string("usage: ") + usage;
    return false;
  };

  Rule rule;
  if (w[0] == "fail") {
    rule.action = Action::fail;
    if (!arity(3, 4, "fail FUNCTION RV [COUNT]") || !function(w[1], rule.function) || !count(3, rule))
      return std::nullopt;
    const auto rv = parse_rv(w[2]);
    if (!rv) {
      why = "unknown return value \"" + std::string(w[2]) + "\"";
      return std::nullopt;
    }
    rule.rv = *rv;
  } else if (w[0] == "latency") {
    rule.action = Action::latency;
    if (!arity(2, 3, "latency MS [FUNCTION]") || (w.size() == 3 && !function(w[2], rule.function)))
      return std::nullopt;
    const auto ms = parse_number<unsigned>(w[1]);
    if (!ms) {
      why = "MS is not a number: \"" + std::string(w[1]) + "\"";
      return std::nullopt;
    }
    rule.delay = std::chrono::milliseconds(*ms);
  } else if (w[0] == "corrupt") {
    rule.action = Action::corrupt;
    if (!arity(2, 3, "corrupt C_Sign|C_SignFinal|* [COUNT]") || !function(w[1], rule.function) ||
        !count(2, rule))
      return std::nullopt;
    if (rule.function && rule.function != Fn::C_Sign && rule.function != Fn::C_SignFinal) {
      why = "corrupt only applies to C_Sign and C_SignFinal";
      return std::nullopt;
    }
  } else if (w[0] == "hang") {
    rule.action = Action::hang;
    if (!arity(2, 2, "hang FUNCTION") || !function(w[1], rule.function)) return std::nullopt;
  } else {
    why = "unknown directive \"" + std::string(w[0]) + "\"";
    return std::nullopt;
  }
  return rule;
}

}  // namespace

std::optional<CK_RV> parse_rv(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) return parse_number<CK_RV>(text.substr(2), 16);
  for (const auto& known : kRvNames)
    if (known.name == text) return known.rv;
  return std::nullopt;
}

Control parse_control(std::string_view text, std::vector<std::string>& complaints) {
  Control control;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++number;
    line = line.substr(0, line.find('#'));
    const auto w = words(line);
    if (w.empty()) continue;

    std::string why;
    if (w[0] == "removed") {
      if (w.size() == 1) {
        control.removed = true;
        continue;
      }
      why = "usage: removed";
    } else if (auto rule = parse_rule(w, why)) {
      control.rules.push_back(*rule);
      continue;
    }
    complaints.push_back("line " + std::to_string(number) + ": " + why + ", ignored");
  }
  return control;
}

bool ControlFile::Version::operator==(const Version& o) const {
  return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
         mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
         ctime.tv_nsec == o.ctime.tv_nsec;
}

bool ControlFile::refresh(Control& into, std::vector<std::string>& complaints) {
  Version now;
  struct stat st {};
  if (!path_.empty() && ::stat(path_.c_str(), &st) == 0)
    now = {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
  if (seen_ && *seen_ == now) return false;
  seen_ = now;

  std::string text;
  if (now.exists) {
    std::ifstream in(path_);
    std::ostringstream all;
    all << in.rdbuf();
    text = all.str();
  }
  into = parse_control(text, complaints);
  return true;
}

}  // namespace hsmsignd::fault
