// hsmsignctl: the operator and issuer command line. See `hsmsignctl --help`.
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
#include "config/config.h"
#include "custody/custody_html.h"
#include "custody/custody_report.h"
#include "module.h"
#include "pin.h"
#include "session_pool.h"
#include "token.h"
#include "jose/jwk.h"
#include "unix_http.h"

namespace {

using hsmsignd::ctl::Answer;
using nlohmann::json;

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

// Prints the daemon's error answer as one line and gives the exit status.
int report(const Answer& a) {
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
  json body = json::object();
  json claims = json::object();
  while (!args.done()) {
    const std::string opt = args.take("option");
    if (opt == "--sub") body["sub"] = args.take("--sub");
    else if (opt == "--aud") body["aud"] = args.take("--aud");
    else if (opt == "--keyset") body["keyset"] = args.take("--keyset");
    else if (opt == "--ttl") {
      const std::string v = args.take("--ttl");
      try {
        std::size_t used = 0;
        const long long ttl = std::stoll(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
        body["ttl"] = ttl;
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
  if (!body.contains("sub")) throw UsageError("jwt needs --sub");
  if (!claims.empty()) body["claims"] = claims;
  const Answer a = hsmsignd::ctl::request(socket, "POST", "/v1/jwt", body.dump());
  if (a.status != 200) return report(a);
  std::cout << json::parse(a.body).at("jwt").get<std::string>() << "\n";
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
  const Answer a = hsmsignd::ctl::request(admin, "POST", "/v1/admin/destroy", json{{"kid", kid}}.dump());
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
  const Answer a = hsmsignd::ctl::request(socket, "GET", "/v1/keys");
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
  const Answer a = hsmsignd::ctl::request(socket, "GET", "/.well-known/jwks.json");
  if (a.status != 200) return report(a);
  std::cout << json::parse(a.body).dump(2) << "\n";
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
  const Answer a = hsmsignd::ctl::request(admin, "POST", "/v1/admin/rotate", body.dump());
  if (a.status != 200) return report(a);
  std::cout << json::parse(a.body).at("kid").get<std::string>() << "\n";
  return 0;
}

int cmd_retire(Args& args, const std::filesystem::path& admin) {
  json body = {{"kid", args.take("retire needs a KID")}};
  if (!args.done()) throw UsageError("retire takes one KID");
  const Answer a = hsmsignd::ctl::request(admin, "POST", "/v1/admin/retire", body.dump());
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
  auto module = check(p11::Module::load(config.token.module));
  auto token = check(p11::find_token(*module, {config.token.label, config.token.serial}));
  auto pool = check(p11::SessionPool::open(module, token, check(p11::Pin::read_file(config.token.pin_file)), {1}));
  const auto counts = hsmsignd::custody::count_signatures(config.audit.file);
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  auto report = check(pool->run([&](p11::SessionRef s) { return hsmsignd::custody::report(s, token, config, counts, now); }));
  if (html) {
    std::ofstream(*html) << hsmsignd::custody::html(report, config.audit.file, now);
    std::fprintf(stderr, "wrote %s\n", html->c_str());
  }
  std::cout << (as_json ? report.dump(2) + "\n" : hsmsignd::custody::table(report));
  return 0;
}

int cmd_checkpoint(Args& args, const std::filesystem::path& admin) {
  if (!args.done()) throw UsageError("checkpoint takes no options");
  const Answer a = hsmsignd::ctl::request(admin, "POST", "/v1/admin/checkpoint", "{}");
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
    const bool admin = command == "rotate" || command == "retire" || command == "checkpoint" ||
                       (command == "keys" && !args.done() && (args.words[args.next] == "generate" || args.words[args.next] == "destroy"));
    if ((admin && !admin_socket) || (!admin && !socket)) {
      const auto config = hsmsignd::config::load(config_path.value_or("/etc/hsmsignd/hsmsignd.toml"));
      if (!socket) socket = config.server.socket;
      if (!admin_socket) admin_socket = config.server.admin_socket;
    }
    if (command == "rotate") return cmd_rotate(args, *admin_socket);
    if (command == "retire") return cmd_retire(args, *admin_socket);
    if (command == "checkpoint") return cmd_checkpoint(args, *admin_socket);
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
