#include "custody/custody_html.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include "common/rfc3339.h"

namespace hsmsignd::custody {
namespace {

using Seconds = long long;

struct Life {
  std::string kid, keyset, state;
  std::optional<Seconds> created, activates, deactivates, retires, retired_at, destroyed_at;
  bool on_token = false;
  std::string signatures = "-";
};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::optional<Seconds> parse_time(const nlohmann::ordered_json& v) {
  if (!v.is_string()) return std::nullopt;
  std::tm tm{};
  const std::string s = v.get<std::string>();
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<Seconds>(::timegm(&tm));
}

// What the audit log says happened to each key, including keys the token no longer holds.
void read_log(const std::filesystem::path& log, std::map<std::string, Life>& lives) {
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("kid") || !j["kid"].is_string() || !j.contains("event")) continue;
    const std::string event = j["event"];
    if (event != "keygen" && event != "activate" && event != "retire" && event != "destroy") continue;
    Life& l = lives[j["kid"].get<std::string>()];
    l.kid = j["kid"];
    if (j.contains("keyset") && j["keyset"].is_string()) l.keyset = j["keyset"];
    const auto t = parse_time(j["time"]);
    if (event == "keygen") {
      l.created = t;
      if (auto label = keyring::KeyLabel::parse(j.value("label", std::string())))
        l.activates = label->activates.time_since_epoch().count();
    } else if (event == "activate" && !l.activates) {
      l.activates = t;
    } else if (event == "retire") {
      l.retired_at = t;
    } else if (event == "destroy") {
      l.destroyed_at = t;
    }
  }
}

}  // namespace

std::string html(const nlohmann::ordered_json& report, const std::filesystem::path& audit_log, keyring::TimePoint now_tp) {
  const Seconds now = now_tp.time_since_epoch().count();
  std::map<std::string, Life> lives;
  read_log(audit_log, lives);
  for (const auto& k : report["keys"]) {
    if (!k["kid"].is_string()) continue;
    Life& l = lives[k["kid"].get<std::string>()];
    l.kid = k["kid"];
    l.keyset = k["keyset"].is_string() ? k["keyset"].get<std::string>() : "(not hsmsignd's)";
    l.state = k["state"].is_string() ? k["state"].get<std::string>() : "-";
    l.on_token = true;
    l.signatures = k["signatures"].dump();
    if (auto t = parse_time(k["created"])) l.created = t;
    if (auto t = parse_time(k["activates"])) l.activates = t;
    l.deactivates = parse_time(k["deactivates"]);
    l.retires = parse_time(k["retires"]);
  }
  for (auto& [kid, l] : lives)
    if (!l.on_token) l.state = l.destroyed_at ? "destroyed" : "gone";

  std::vector<Life*> rows;
  Seconds start = now, end = now;
  for (auto& [kid, l] : lives) {
    rows.push_back(&l);
    for (auto t : {l.created, l.activates}) if (t) start = std::min(start, *t);
    for (auto t : {l.retires, l.destroyed_at}) if (t) end = std::max(end, *t);
  }
  std::sort(rows.begin(), rows.end(), [](const Life* a, const Life* b) {
    return std::tie(a->keyset, a->activates) < std::tie(b->keyset, b->activates);
  });
  const Seconds span = std::max<Seconds>(end - start, 1);
  constexpr int kLeft = 330, kWidth = 620, kRow = 24;
  auto x = [&](Seconds t) { return kLeft + static_cast<int>(static_cast<double>(t - start) / static_cast<double>(span) * kWidth); };

  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(kLeft + kWidth + 20) +
                    "' height='" + std::to_string(kRow * (static_cast<int>(rows.size()) + 2)) + "'>";
  auto bar = [&](int row, std::optional<Seconds> from, std::optional<Seconds> to, const char* color, const char* what) {
    if (!from) return;
    const Seconds b = std::min(to.value_or(now), end);
    if (b <= *from) return;
    svg += "<rect x='" + std::to_string(x(*from)) + "' y='" + std::to_string(row * kRow + 4) + "' width='" +
           std::to_string(std::max(1, x(b) - x(*from))) + "' height='16' fill='" + color + "'><title>" + what + " " +
           rfc3339(std::chrono::sys_seconds(std::chrono::seconds(*from))) + " to " +
           rfc3339(std::chrono::sys_seconds(std::chrono::seconds(b))) + "</title></rect>";
  };
  int row = 0;
  for (const Life* l : rows) {
    svg += "<text x='4' y='" + std::to_string(row * kRow + 17) + "' font-size='11' font-family='monospace'>" +
           escape(l->keyset + " " + l->kid.substr(0, 20) + "… " + l->state) + "</text>";
    const auto active_end = l->deactivates ? l->deactivates : l->retired_at;
    bar(row, l->created, l->activates, "#9ecae1", "pending");
    bar(row, l->activates, active_end ? active_end : std::optional<Seconds>(now), "#31a354", "active");
    if (l->deactivates) bar(row, l->deactivates, l->retires ? l->retires : l->retired_at, "#fdae6b", "retiring");
    if (l->destroyed_at)
      svg += "<text x='" + std::to_string(x(*l->destroyed_at) - 4) + "' y='" + std::to_string(row * kRow + 17) +
             "' font-size='14' fill='#de2d26'>✕<title>destroyed " +
             rfc3339(std::chrono::sys_seconds(std::chrono::seconds(*l->destroyed_at))) + "</title></text>";
    ++row;
  }
  svg += "<line x1='" + std::to_string(x(now)) + "' x2='" + std::to_string(x(now)) + "' y1='0' y2='" +
         std::to_string(row * kRow) + "' stroke='black' stroke-dasharray='3,3'/>";
  svg += "<text x='" + std::to_string(kLeft) + "' y='" + std::to_string(row * kRow + 18) + "' font-size='11'>" +
         rfc3339(std::chrono::sys_seconds(std::chrono::seconds(start))) + "</text><text x='" +
         std::to_string(kLeft + kWidth - 130) + "' y='" + std::to_string(row * kRow + 18) + "' font-size='11'>" +
         rfc3339(std::chrono::sys_seconds(std::chrono::seconds(end))) + "</text></svg>";

  std::string table = "<table><tr><th>kid</th><th>keyset</th><th>algorithm</th><th>state</th><th>local</th>"
                      "<th>never extractable</th><th>always sensitive</th><th>extractable</th><th>sensitive</th>"
                      "<th>signatures</th></tr>";
  for (const auto& k : report["keys"]) {
    auto cell = [&](const char* key, bool good_when) {
      const bool v = k[key].get<bool>();
      return std::string("<td class='") + (v == good_when ? "ok" : "bad") + "'>" + (v ? "yes" : "no") + "</td>";
    };
    // null: the token does not report CKA_LOCAL and require_local is off; the keygen audit line stands in.
    auto local_cell = [&] {
      if (!k["local"].is_null()) return cell("local", true);
      const auto& evidence = k["local_evidence"];
      if (!evidence.is_object()) return std::string("<td class='bad'>not reported; no keygen line</td>");
      return "<td class='ok'>not reported; keygen at audit seq " + evidence["keygen_audit_seq"].dump() + "</td>";
    };
    table += "<tr><td><code>" + escape(k["kid"].is_string() ? k["kid"].get<std::string>() : "-") + "</code></td><td>" +
             escape(k["keyset"].is_string() ? k["keyset"].get<std::string>() : "-") + "</td><td>" +
             escape(k["algorithm"].is_string() ? k["algorithm"].get<std::string>() : "-") + "</td><td>" +
             escape(k["state"].is_string() ? k["state"].get<std::string>() : "-") + "</td>" + local_cell() +
             cell("never_extractable", true) + cell("always_sensitive", true) + cell("extractable", false) +
             cell("sensitive", true) + "<td>" + k["signatures"].dump() + "</td></tr>";
  }
  table += "</table>";
  const auto& t = report["token"];
  return "<!doctype html><html><head><meta charset='utf-8'><title>hsmsignd custody report</title><style>"
         "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
         "padding:3px 6px;font-size:12px}.ok{background:#e5f5e0}.bad{background:#fcbba1;font-weight:bold}"
         "</style></head><body><h1>hsmsignd custody report</h1><p>Token <b>" + escape(t["label"].get<std::string>()) +
         "</b>, serial " + escape(t["serial"].get<std::string>()) + ", model " + escape(t["model"].get<std::string>()) +
         ", manufacturer " + escape(t["manufacturer"].get<std::string>()) + ". Generated " +
         rfc3339(now_tp) + ".</p><h2>Key lifetimes</h2><p>Blue: pending (published, not signing); green: active; "
         "orange: retiring (published, no longer signing); ✕: destroyed on the token. Keys no longer on the token "
         "come from the audit log.</p>" + svg +
         "<h2>Keys on the token</h2>" + table +
         "<p>A key born in the token and never able to leave it reads yes, yes, yes, no, yes. Signature counts come "
         "from the audit log; check the log itself with <code>hsmsignctl audit verify</code>.</p></body></html>\n";
}

}  // namespace hsmsignd::custody
