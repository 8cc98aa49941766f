// hsmsignctl: the operator and issuer command line. See `hsmsignctl --help`.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "unix_http.h"

namespace {

using hsmsignd::ctl::Answer;
using nlohmann::json;

constexpr const char* kUsage = R"(usage: hsmsignctl [--config FILE | --socket PATH] COMMAND ...
commands:
  jwt --sub S [--aud A] [--ttl SECONDS] [--keyset K] [--claim k=v]...
                 ask the daemon for a JWT and print it alone on stdout; a claim's value is read as
                 JSON when it is valid JSON (5, true, ["a"]), as a string otherwise
  keys [--json]  the keys and their lifecycle states
  jwks           the JWK Set
the socket comes from --socket, else from the configuration's [server] socket (--config, default
/etc/hsmsignd/hsmsignd.toml)
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

int cmd_keys(Args& args, const std::filesystem::path& socket) {
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

}  // namespace

int main(int argc, char** argv) {
  Args args{{argv + 1, argv + argc}};
  try {
    std::optional<std::filesystem::path> config_path, socket;
    while (!args.done() && args.words[args.next].starts_with("--")) {
      const std::string opt = args.take("option");
      if (opt == "--help" || opt == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (opt == "--config") config_path = args.take("--config");
      else if (opt == "--socket") socket = args.take("--socket");
      else throw UsageError("unknown option " + opt);
    }
    if (args.done()) throw UsageError("no command");
    const std::string command = args.take("command");
    if (!socket) socket = hsmsignd::config::load(config_path.value_or("/etc/hsmsignd/hsmsignd.toml")).server.socket;
    if (command == "jwt") return cmd_jwt(args, *socket);
    if (command == "keys") return cmd_keys(args, *socket);
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
