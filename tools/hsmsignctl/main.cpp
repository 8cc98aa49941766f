// hsmsignctl: the operator and issuer command line. See `hsmsignctl --help`.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/verify_chain.h"
#include "common/rfc3339.h"
#include "config/config.h"
#include "custody/custody_html.h"
#include "custody/custody_report.h"
#include "module.h"
#include "pin.h"
#include "session_pool.h"
#include "token_ops.h"
#include "token.h"
#include "hsmsignd/client.h"
#include "jose/jwk.h"

namespace {

using hsmsignd::client::Client;
using hsmsignd::client::Response;
using nlohmann::json;

// Long enough for an admin step that generates an RSA-4096 key inside a slow token; a daemon that stops
// answering still ends the command instead of hanging it.
constexpr std::chrono::minutes kCallTimeout{5};

constexpr const char* kUsage = R"(usage: hsmsignctl [--config FILE] [--socket PATH] [--admin-socket PATH] COMMAND ...
commands:
  jwt --sub S [--aud A] [--ttl SECONDS] [--keyset K] [--claim k=v]...
                 ask the daemon for a JWT and print it alone on stdout; a claim's value is read as
                 JSON when it is valid JSON (5, true, ["a"]), as a string otherwise
  keys [--json]  the keys and their lifecycle states
  keys generate KEYSET
                 admin: generate the keyset's next key ahead of time (prepublished; same as rotate)
  keys destroy KID [--confirm KID]
                 admin: destroy a retired key on the token for good; asks for the kid to be typed again
                 unless --confirm repeats it
  jwks           the JWK Set
  rotate KEYSET [--immediate]
                 admin: a new key, prepublished (with --immediate: signing at once, for a compromised key)
  retire KID     admin: the key stops signing and leaves the JWKS now (an active key is replaced first)
  checkpoint     admin: write a signed audit checkpoint now
  custody [--json] [--html FILE]
                 the custody report, read from the token itself (needs the configuration and its PIN)
                 and the audit log
  revoke TOKEN | revoke --jti JTI [--iss ISS] [--exp TIME]
         | revoke --sub SUB [--iss ISS] [--before TIME] | revoke --keyset NAME [--before TIME]
                 admin: revoke one token (TOKEN "-" reads it from stdin), a jti (without --iss: of every
                 configured issuer; until --exp, default now + the longest max_ttl), every token of a
                 subject or of a keyset issued before TIME (default now); prints one line per entry
                 stored; exit 1 when the daemon refused or stored nothing (a token not its own, expired).
                 TIME is RFC 3339 (2026-12-02T10:00:00Z, 2026-12-02T11:00:00+01:00) or unix seconds
  verify TOKEN [--aud AUD] [--json]
                 admin: check a token (TOKEN "-" reads it from stdin): its header, claims, key and the
                 key's state, whether it is revoked, and the first check it fails; --json prints the
                 daemon's answer as it is; exit 0 valid, 1 invalid or refused
  audit verify [--key FILE.key.jwk] FILE...
                 check an audit log (or rotated files, oldest first): the hash chain, seq, and every
                 checkpoint's signature; exit 1 naming the first line that breaks it
the sockets come from --socket / --admin-socket, else from the configuration's [server] socket and
admin_socket (--config, default /etc/hsmsignd/hsmsignd.toml)
exit status: 0 success, 1 refused or failed, 2 usage
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::vector<std::string> words;
  std::size_t next = 0;
  bool done() const { return next >= words.size(); }
  std::string take(const std::string& what) {
    if (done()) throw UsageError(what + " needs a value");
    return words[next++];
  }
};

Client client_for(const std::filesystem::path& socket) { return Client({socket.string(), kCallTimeout}); }

// One request to one of the daemon's sockets. A call that got no answer throws the library's message,
// which names the socket ("cannot connect to /run/hsmsignd/admin.sock: Permission denied").
Response call(const std::filesystem::path& socket, const std::string& method, const std::string& target,
              const std::string& body = {}) {
  auto answer = client_for(socket).request(method, target, body);
  if (!answer) throw std::runtime_error(answer.error().what());
  return std::move(*answer);
}

// Prints a failed typed call as one line ("403 forbidden: ...", or why no answer came) and gives the exit
// status.
int report(const hsmsignd::client::Error& e) {
  std::fprintf(stderr, "hsmsignctl: %s\n", e.what().c_str());
  return 1;
}

// Prints the daemon's error answer as one line and gives the exit status.
int report(const Response& a) {
  std::string message = a.body;
  try {
    auto j = json::parse(a.body);
    message = j.value("error", "error") + ": " + j.value("message", "");
  } catch (const json::exception&) {
  }
  std::fprintf(stderr, "hsmsignctl: %d %s\n", a.status, message.c_str());
  return 1;
}

int cmd_jwt(Args& args, const std::filesystem::path& socket) {
  hsmsignd::client::JwtRequest request;
  bool has_sub = false;
  json claims = json::object();
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--sub") {
      request.sub = args.take("--sub");
      has_sub = true;
    } else if (opt == "--aud") {
      request.aud = {args.take("--aud")};  // the last one counts, as a string
    } else if (opt == "--keyset") {
      request.keyset = args.take("--keyset");
    } else if (opt == "--ttl") {
      const std::string v = args.take("--ttl");
      try {
        std::size_t used = 0;
        const long long ttl = std::stoll(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
        request.ttl = ttl;
      } catch (const std::exception&) {
        throw UsageError("--ttl takes a whole number of seconds");
      }
    } else if (opt == "--claim") {
      const std::string kv = args.take("--claim");
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--claim takes NAME=VALUE");
      const std::string value = kv.substr(eq + 1);
      claims[kv.substr(0, eq)] = json::accept(value) ? json::parse(value) : json(value);
    } else {
      throw UsageError("jwt: unknown option " + opt);
    }
  }
  if (!has_sub) throw UsageError("jwt needs --sub");
  if (!claims.empty()) request.claims_json = claims.dump();
  const auto token = client_for(socket).issue_jwt(request);
  if (!token) return report(token.error());
  std::cout << token->jwt << "\n";
  return 0;
}

int cmd_rotate(Args& args, const std::filesystem::path& admin);

int cmd_destroy(Args& args, const std::filesystem::path& admin) {
  const std::string kid = args.take("keys destroy needs a KID");
  std::string confirm;
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--confirm") confirm = args.take("--confirm");
    else throw UsageError("keys destroy: unknown option " + opt);
  }
  if (confirm.empty()) {
    // Destruction cannot be undone: the operator types the kid a second time.
    std::fprintf(stderr, "Destroying key %s cannot be undone. Type its kid again to confirm: ", kid.c_str());
    std::getline(std::cin, confirm);
  }
  if (confirm != kid) {
    std::fprintf(stderr, "hsmsignctl: the kid typed again does not match; nothing was destroyed\n");
    return 1;
  }
  const Response a = call(admin, "POST", "/v1/admin/destroy", json{{"kid", kid}}.dump());
  if (a.status != 200) return report(a);
  std::cout << "destroyed " << kid << "\n";
  return 0;
}

int cmd_keys(Args& args, const std::filesystem::path& socket, const std::filesystem::path& admin) {
  if (!args.done() && args.words[args.next] == "generate") {
    ++args.next;
    return cmd_rotate(args, admin);
  }
  if (!args.done() && args.words[args.next] == "destroy") {
    ++args.next;
    return cmd_destroy(args, admin);
  }
  bool as_json = false;
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--json") as_json = true;
    else throw UsageError("keys: unknown option " + opt);
  }
  const Response a = call(socket, "GET", "/v1/keys");
  if (a.status != 200) return report(a);
  const json keys = json::parse(a.body);
  if (as_json) {
    std::cout << keys.dump(2) << "\n";
    return 0;
  }
  auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string("-"); };
  std::printf("%-44s %-12s %-6s %-9s %-21s %-21s %-21s\n", "KID", "KEYSET", "ALG", "STATE", "ACTIVATES", "DEACTIVATES",
              "RETIRES");
  for (const auto& k : keys.at("keys"))
    std::printf("%-44s %-12s %-6s %-9s %-21s %-21s %-21s\n", text(k["kid"]).c_str(), text(k["keyset"]).c_str(),
                text(k["alg"]).c_str(), text(k["state"]).c_str(), text(k["activates"]).c_str(),
                text(k["deactivates"]).c_str(), text(k["retires"]).c_str());
  return 0;
}

int cmd_jwks(Args& args, const std::filesystem::path& socket) {
  if (!args.done()) throw UsageError("jwks takes no options");
  const auto jwks = client_for(socket).jwks();
  if (!jwks) return report(jwks.error());
  std::cout << json::parse(*jwks).dump(2) << "\n";
  return 0;
}

int cmd_rotate(Args& args, const std::filesystem::path& admin) {
  if (args.done()) throw UsageError("needs a KEYSET");
  json body = {{"keyset", args.take("rotate needs a KEYSET")}};
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--immediate") body["immediate"] = true;
    else throw UsageError("rotate: unknown option " + opt);
  }
  const Response a = call(admin, "POST", "/v1/admin/rotate", body.dump());
  if (a.status != 200) return report(a);
  std::cout << json::parse(a.body).at("kid").get<std::string>() << "\n";
  return 0;
}

int cmd_retire(Args& args, const std::filesystem::path& admin) {
  json body = {{"kid", args.take("retire needs a KID")}};
  if (!args.done()) throw UsageError("retire takes one KID");
  const Response a = call(admin, "POST", "/v1/admin/retire", body.dump());
  if (a.status != 200) return report(a);
  return 0;
}

int cmd_custody(Args& args, const std::filesystem::path& config_path) {
  bool as_json = false;
  std::optional<std::filesystem::path> html;
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--json") as_json = true;
    else if (opt == "--html") html = args.take("--html");
    else throw UsageError("custody: unknown option " + opt);
  }
  const auto config = hsmsignd::config::load(config_path);
  namespace p11 = hsmsignd::pkcs11;
  auto check = [](auto result) {
    if (!result) throw std::runtime_error(result.error().what());
    return std::move(*result);
  };
  if (config.token.pin_file.empty()) throw std::runtime_error("token.pin_file is not set");
  auto module = check(p11::Module::load(config.token.module, config.token.init_args));
  auto token = check(p11::find_token(*module, {config.token.label, config.token.serial}));
  auto pool = check(p11::SessionPool::open(module, token, check(p11::Pin::read_file(config.token.pin_file)), {1}));
  const auto counts = hsmsignd::custody::count_signatures(config.audit.file);
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  p11::LocalToken ops(*pool);
  auto report = check(hsmsignd::custody::report(ops, token, config, counts, now));
  if (html) {
    std::ofstream(*html) << hsmsignd::custody::html(report, config.audit.file, now);
    std::fprintf(stderr, "wrote %s\n", html->c_str());
  }
  std::cout << (as_json ? report.dump(2) + "\n" : hsmsignd::custody::table(report));
  return 0;
}

int cmd_checkpoint(Args& args, const std::filesystem::path& admin) {
  if (!args.done()) throw UsageError("checkpoint takes no options");
  const Response a = call(admin, "POST", "/v1/admin/checkpoint", "{}");
  if (a.status != 200) return report(a);
  std::cout << "checkpoint written at seq " << json::parse(a.body).at("seq") << "\n";
  return 0;
}

// FILE.key.jwk beside the log; a rotated file FILE.<seq> shares the key file of FILE.
std::filesystem::path default_key_file(const std::string& log) {
  std::string base = log;
  const auto dot = base.find_last_of('.');
  if (dot != std::string::npos && dot + 1 < base.size() &&
      base.find_first_not_of("0123456789", dot + 1) == std::string::npos)
    base.erase(dot);
  return hsmsignd::audit::public_key_path(base);
}

int cmd_audit(Args& args) {
  if (args.take("audit needs a subcommand") != "verify") throw UsageError("audit: the subcommand is verify");
  std::optional<std::filesystem::path> key_file;
  std::vector<std::filesystem::path> files;
  while (!args.done()) {
    const std::string word = args.take("FILE");
    if (word == "--key") key_file = args.take("--key");
    else files.emplace_back(word);
  }
  if (files.empty()) throw UsageError("audit verify needs at least one FILE");
  if (!key_file) key_file = default_key_file(files.front().string());
  std::ifstream in(*key_file);
  if (!in) throw std::runtime_error("cannot read the audit key " + key_file->string() + " (use --key)");
  const json jwk = json::parse(in);
  auto key = hsmsignd::jose::from_jwk(jwk, hsmsignd::Algorithm::ES256);
  if (!key) throw std::runtime_error(key_file->string() + ": " + key.error().what());
  const std::string kid = hsmsignd::jose::thumbprint(*key);
  if (jwk.value("kid", kid) != kid) throw std::runtime_error(key_file->string() + ": kid is not the key's thumbprint");

  const auto r = hsmsignd::audit::verify_chain(files, *key, kid);
  if (!r.ok) {
    std::fprintf(stderr, "hsmsignctl: audit log broken: %s\n", r.error.c_str());
    return 1;
  }
  std::printf("ok: %llu lines from seq %llu, %llu signed checkpoints (audit key %s)\n",
              static_cast<unsigned long long>(r.lines), static_cast<unsigned long long>(r.first_seq),
              static_cast<unsigned long long>(r.checkpoints), kid.c_str());
  if (r.first_seq > 1) std::printf("note: starts at seq %llu; earlier files were not given\n", static_cast<unsigned long long>(r.first_seq));
  std::printf("%llu lines after the last checkpoint are chained but not yet covered by a signature\n",
              static_cast<unsigned long long>(r.uncovered));
  std::printf("signatures by key:\n");
  for (const auto& [k, n] : r.signatures_by_kid) std::printf("  %-44s %llu\n", k.c_str(), static_cast<unsigned long long>(n));
  std::printf("signatures by client:\n");
  for (const auto& [c, n] : r.signatures_by_client) std::printf("  %-44s %llu\n", c.c_str(), static_cast<unsigned long long>(n));
  return 0;
}

// A token argument: "-" reads it from stdin (surrounding blanks and newlines dropped).
std::string token_argument(std::string word) {
  if (word == "-") {
    std::string all, line;
    while (std::getline(std::cin, line)) all += line;
    word = all;
  }
  const auto first = word.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw UsageError("the token is empty");
  word = word.substr(first, word.find_last_not_of(" \t\r\n") - first + 1);
  return word;
}

// Unix seconds, or RFC 3339 ("2026-12-02T10:00:00Z", a fraction and a +hh:mm offset allowed).
std::int64_t parse_time(const std::string& option, const std::string& text) {
  const auto bad = [&] {
    return UsageError(option + " takes unix seconds or an RFC 3339 time (2026-12-02T10:00:00Z), not \"" + text + "\"");
  };
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    if (text.size() > 12) throw bad();
    return std::stoll(text);
  }
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
  auto digits = [&](std::size_t at, std::size_t n) {
    if (at + n > text.size()) throw bad();
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') throw bad();
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto expect = [&](std::size_t at, const char* any) {
    if (at >= text.size() || text[at] == '\0' || !std::strchr(any, text[at])) throw bad();
  };
  const int year = digits(0, 4);
  expect(4, "-");
  const unsigned month = digits(5, 2);
  expect(7, "-");
  const unsigned day = digits(8, 2);
  expect(10, "Tt ");
  const int hour = digits(11, 2);
  expect(13, ":");
  const int minute = digits(14, 2);
  expect(16, ":");
  const int second = digits(17, 2);
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    const std::size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    if (at == start) throw bad();
  }
  int offset = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) {
    offset = 0;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-') && at + 6 == text.size()) {
    const int sign = text[at] == '+' ? 1 : -1;
    const int oh = digits(at + 1, 2);
    expect(at + 3, ":");
    const int om = digits(at + 4, 2);
    if (oh > 23 || om > 59) throw bad();
    offset = sign * (oh * 3600 + om * 60);
  } else {
    throw bad();
  }
  const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{month}, std::chrono::day{day}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) throw bad();
  const auto days = std::chrono::sys_days{date}.time_since_epoch().count();
  return static_cast<std::int64_t>(days) * 86400 + hour * 3600 + minute * 60 + std::min(second, 59) - offset;
}

std::string time_text(const json& v) {
  if (!v.is_number_integer()) return v.dump();
  return hsmsignd::rfc3339(std::chrono::sys_seconds{std::chrono::seconds{v.get<std::int64_t>()}});
}

// One line per entry stored, as /v1/admin/revoke lists them.
void print_entry(const json& e) {
  const std::string kind = e.value("kind", "?");
  const std::string name = e.value("name", "");
  const std::string iss = e.contains("iss") && e["iss"].is_string() ? e["iss"].get<std::string>() : "";
  const std::string until = e.contains("expires") ? "; kept until " + time_text(e["expires"]) : "";
  if (kind == "jti")
    std::printf("revoked jti %s of %s (exp %s%s)\n", name.c_str(), iss.c_str(), time_text(e.value("at", json())).c_str(),
                until.c_str());
  else if (kind == "subject")
    std::printf("revoked subject %s of %s: tokens issued before %s%s\n", name.c_str(), iss.c_str(),
                time_text(e.value("at", json())).c_str(), until.c_str());
  else if (kind == "keyset")
    std::printf("revoked keyset %s: tokens issued before %s%s\n", name.c_str(), time_text(e.value("at", json())).c_str(),
                until.c_str());
  else
    std::printf("revoked %s\n", e.dump().c_str());
}

int cmd_revoke(Args& args, const std::filesystem::path& admin) {
  json body = json::object();
  std::optional<std::string> form;  // the option that chose the form
  auto choose = [&](const std::string& which) {
    if (form && *form != which) throw UsageError("revoke takes one of TOKEN, --jti, --sub and --keyset, not " + *form + " and " + which);
    form = which;
  };
  while (!args.done()) {
    const std::string word = args.take("option");
    if (word == "--jti" || word == "--sub" || word == "--keyset") {
      choose(word);
      body[word.substr(2)] = args.take(word);
    } else if (word == "--iss") {
      body["iss"] = args.take("--iss");
    } else if (word == "--exp" || word == "--before") {
      body[word.substr(2)] = parse_time(word, args.take(word));
    } else if (word.starts_with("--")) {
      throw UsageError("revoke: unknown option " + word);
    } else {
      choose("TOKEN");
      body["jwt"] = token_argument(word);
    }
  }
  if (!form) throw UsageError("revoke needs a TOKEN, --jti, --sub or --keyset");
  const auto allowed = [&](std::initializer_list<const char*> names) {
    for (const auto& [key, value] : body.items()) {
      bool ok = false;
      for (const char* n : names) ok = ok || key == n;
      if (!ok) throw UsageError("revoke " + *form + " does not take --" + (key == "jwt" ? std::string("TOKEN") : key));
    }
  };
  if (*form == "TOKEN") allowed({"jwt"});
  else if (*form == "--jti") allowed({"jti", "iss", "exp"});
  else if (*form == "--sub") allowed({"sub", "iss", "before"});
  else allowed({"keyset", "before"});
  const Response a = call(admin, "POST", "/v1/admin/revoke", body.dump());
  if (a.status != 200) return report(a);
  const json answer = json::parse(a.body);
  const json& revoked = answer.at("revoked");
  if (revoked.is_array()) {
    for (const auto& e : revoked) print_entry(e);
    return revoked.empty() ? 1 : 0;
  }
  if (revoked.is_boolean() && revoked.get<bool>()) {  // the token form, as /v1/revoke answers it
    print_entry({{"kind", answer.value("kind", "jti")}, {"name", answer.value("jti", "")}, {"iss", answer.value("iss", "")},
                 {"at", answer.value("exp", json())}});
    return 0;
  }
  std::fprintf(stderr, "hsmsignctl: not revoked: %s\n", answer.value("reason", "?").c_str());
  return 1;
}

int cmd_verify(Args& args, const std::filesystem::path& admin) {
  json body = json::object();
  bool as_json = false;
  while (!args.done()) {
    const std::string word = args.take("option");
    if (word == "--aud") body["aud"] = args.take("--aud");
    else if (word == "--json") as_json = true;
    else if (word.starts_with("--")) throw UsageError("verify: unknown option " + word);
    else if (body.contains("jwt")) throw UsageError("verify takes one TOKEN");
    else body["jwt"] = token_argument(word);
  }
  if (!body.contains("jwt")) throw UsageError("verify needs a TOKEN");
  const Response a = call(admin, "POST", "/v1/admin/verify", body.dump());
  if (a.status != 200) return report(a);
  const json answer = json::parse(a.body);
  const bool valid = answer.value("valid", false);
  if (as_json) {
    std::cout << a.body << (a.body.ends_with("\n") ? "" : "\n");
    return valid ? 0 : 1;
  }
  auto text = [&](const char* name) {
    return answer.contains(name) && answer[name].is_string() ? answer[name].get<std::string>() : std::string();
  };
  if (answer.contains("header")) std::cout << "header: " << answer["header"].dump(2) << "\n";
  if (answer.contains("claims")) std::cout << "claims: " << answer["claims"].dump(2) << "\n";
  if (!text("kid").empty()) {
    if (!text("keyset").empty())
      std::cout << "key: " << text("kid") << " (" << text("keyset") << ", " << (text("state").empty() ? "?" : text("state")) << ")\n";
    else
      std::cout << "key: " << text("kid") << " (not a key of this daemon)\n";
  }
  const std::string reason = text("reason");
  // The revocation is the last check: before it, the answer does not say.
  if (valid) std::cout << "revoked: no\n";
  else if (reason == "revoked") std::cout << "revoked: yes\n";
  else if (reason == "revocation_unavailable") std::cout << "revoked: unknown (the revocation store cannot be reached)\n";
  else std::cout << "revoked: not checked (an earlier check failed)\n";
  if (valid) std::cout << "valid\n";
  else std::cout << "INVALID: " << reason << ": " << text("message") << "\n";
  return valid ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args{{argv + 1, argv + argc}};
  try {
    std::optional<std::filesystem::path> config_path, socket, admin_socket;
    while (!args.done() && args.words[args.next].starts_with("--")) {
      const std::string opt = args.take("option");
      if (opt == "--help" || opt == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (opt == "--config") config_path = args.take("--config");
      else if (opt == "--socket") socket = args.take("--socket");
      else if (opt == "--admin-socket") admin_socket = args.take("--admin-socket");
      else throw UsageError("unknown option " + opt);
    }
    if (args.done()) throw UsageError("no command");
    const std::string command = args.take("command");
    if (command == "audit") return cmd_audit(args);
    if (command == "custody") return cmd_custody(args, config_path.value_or("/etc/hsmsignd/hsmsignd.toml"));
    const bool admin = command == "rotate" || command == "retire" || command == "checkpoint" || command == "revoke" ||
                       command == "verify" ||
                       (command == "keys" && !args.done() && (args.words[args.next] == "generate" || args.words[args.next] == "destroy"));
    if ((admin && !admin_socket) || (!admin && !socket)) {
      const auto config = hsmsignd::config::load(config_path.value_or("/etc/hsmsignd/hsmsignd.toml"));
      if (!socket) socket = config.server.socket;
      if (!admin_socket) admin_socket = config.server.admin_socket;
    }
    if (command == "rotate") return cmd_rotate(args, *admin_socket);
    if (command == "retire") return cmd_retire(args, *admin_socket);
    if (command == "checkpoint") return cmd_checkpoint(args, *admin_socket);
    if (command == "revoke") return cmd_revoke(args, *admin_socket);
    if (command == "verify") return cmd_verify(args, *admin_socket);
    if (command == "jwt") return cmd_jwt(args, *socket);
    if (command == "keys") return cmd_keys(args, socket.value_or(""), admin_socket.value_or(""));
    if (command == "jwks") return cmd_jwks(args, *socket);
    throw UsageError("unknown command " + command);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "hsmsignctl: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const hsmsignd::config::ConfigError& e) {
    std::fprintf(stderr, "hsmsignctl: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hsmsignctl: %s\n", e.what());
    return 1;
  }
}
