#include "daemon.h"

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without including it

#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <optional>

#include "api/health.h"
#include "api/issuer_api.h"
#include "common/rfc3339.h"
#include "jwks/jwks_file.h"
#include "keyring/keyring.h"
#include "keys.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "module.h"
#include "pin.h"
#include "server/listeners.h"
#include "session_pool.h"
#include "signing/sign_queue.h"
#include "token.h"

namespace hsmsignd {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kMaxQueuedSignatures = 4096;
constexpr auto kShutdownGrace = std::chrono::seconds(5);

keyring::TimePoint now() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

// Idle keep-alive connections each hold a descriptor: allow as many as the hard limit permits.
void raise_descriptor_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

struct Token {
  std::shared_ptr<pkcs11::Module> module;
  std::unique_ptr<pkcs11::SessionPool> pool;
};

Token open_token(const config::Config& config) {
  auto fail = [](const pkcs11::Error& e) {
    return StartupError(e.kind == pkcs11::ErrorKind::config ? 2 : 1, e.what());
  };
  auto module = pkcs11::Module::load(config.token.module);
  if (!module) throw fail(module.error());
  auto token = pkcs11::find_token(**module, {config.token.label, config.token.serial});
  if (!token) throw fail(token.error());
  if (config.token.pin_file.empty())
    throw StartupError(2, config.file.string() + ": token.pin_file: not set, and $CREDENTIALS_DIRECTORY is not set "
                          "either: set pin_file, or start hsmsignd under systemd with LoadCredential=pin:...");
  auto pin = pkcs11::Pin::read_file(config.token.pin_file);
  if (!pin) throw fail(pin.error());
  auto pool = pkcs11::SessionPool::open(*module, *token, std::move(*pin), {config.token.sessions});
  if (!pool) throw fail(pool.error());
  log::info("login", {{"token", token->label}, {"serial", token->serial}, {"model", token->model},
                      {"sessions", std::to_string((*pool)->size())}});
  for (const auto& keyset : config.keysets) {
    auto ok = pkcs11::supports(**module, token->slot, keyset.algorithm);
    if (!ok || !*ok)
      throw StartupError(1, "token \"" + token->label + "\" does not offer the mechanisms " +
                                std::string(name(keyset.algorithm)) + " needs (keyset \"" + keyset.name + "\")");
  }
  return {std::move(*module), std::move(*pool)};
}

server::Limits limits_from(const config::Config& c) {
  server::Limits l;
  l.max_body = c.server.max_body;
  l.request_timeout = c.server.request_timeout;
  l.idle_timeout = c.server.idle_timeout;
  return l;
}

std::vector<metrics::Metrics::Keyset> metric_keysets(const config::Config& c) {
  std::vector<metrics::Metrics::Keyset> out;
  for (const auto& k : c.keysets) out.push_back({k.name, k.algorithm});
  return out;
}

}  // namespace

struct Daemon::Parts {
  explicit Parts(const config::Config& config)
      : token(open_token(config)),
        keyring(*token.pool, config),
        queue(token.pool->size(), kMaxQueuedSignatures),
        metrics(metric_keysets(config)),
        limits(limits_from(config)),
        api({config, keyring, queue, metrics, health, *token.pool}) {}

  Token token;
  keyring::Keyring keyring;
  signing::SignQueue queue;
  metrics::Metrics metrics;
  api::Health health;
  server::Limits limits;
  server::InFlight in_flight;
  api::IssuerApi api;
  asio::io_context io{1};
  std::optional<server::UnixListener> issuer;
  std::optional<server::TcpListener> jwks;
};

Daemon::Daemon(config::Config config) : config_(std::move(config)) {}

Daemon::~Daemon() {
  if (parts_) parts_->queue.stop();
}

void Daemon::start() {
  raise_descriptor_limit();
  parts_ = std::make_unique<Parts>(config_);
  auto& p = *parts_;

  if (auto loaded = p.keyring.load(now()); !loaded) throw StartupError(1, "loading keys: " + loaded.error().what());
  auto view = p.keyring.view();
  for (const auto& k : view->keys)
    log::info("key", {{"keyset", k.keyset}, {"kid", k.kid}, {"state", std::string(keyring::name(k.schedule.state))},
                      {"activates", rfc3339(k.schedule.activates)}});

  if (!config_.jwks.file.empty()) {
    if (auto ec = jwks::write_atomically(config_.jwks.file, view->jwks))
      throw StartupError(1, "writing " + config_.jwks.file.string() + ": " + ec.message());
  }

  try {
    p.issuer.emplace(
        p.io, config_.server.socket, config_.server.socket_mode,
        [this](const policy::Peer& peer) -> server::Handler {
          const config::ClientConfig* client = policy::find_client(config_, peer);
          return [this, peer, client](const api::HttpRequest& request, api::Reply reply) {
            parts_->api.handle(peer, client, request, std::move(reply));
          };
        },
        p.limits, p.in_flight);
    if (!config_.jwks.listen.empty())
      p.jwks.emplace(
          p.io, config_.jwks.listen_host, config_.jwks.listen_port,
          [this](const api::HttpRequest& request, api::Reply reply) { parts_->api.handle_public(request, std::move(reply)); },
          p.limits, p.in_flight);
  } catch (const std::exception& e) {
    throw StartupError(1, e.what());
  }
  p.issuer->start();
  if (p.jwks) p.jwks->start();
  log::info("start", {{"socket", config_.server.socket.string()},
                      {"jwks", config_.jwks.listen.empty() ? std::string("off") : config_.jwks.listen}});
}

int Daemon::run() {
  auto& p = *parts_;
  asio::signal_set signals(p.io, SIGTERM, SIGINT);
  asio::steady_timer drain(p.io);
  std::function<void()> wait_for_requests;
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("stop", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    ::sd_notify(0, "STOPPING=1");
    p.issuer->close();
    if (p.jwks) p.jwks->close();
    const auto give_up = std::chrono::steady_clock::now() + kShutdownGrace;
    wait_for_requests = [&, give_up] {
      if (p.in_flight.requests.load() == 0 || std::chrono::steady_clock::now() > give_up) return p.io.stop();
      drain.expires_after(std::chrono::milliseconds(20));
      drain.async_wait([&](const boost::system::error_code&) { wait_for_requests(); });
    };
    wait_for_requests();
  });
  ::sd_notify(0, "READY=1");
  p.io.run();
  p.queue.stop();
  return 0;
}

int Daemon::check(const config::Config& config) {
  try {
    Token token = open_token(config);
    const auto& info = token.pool->token();
    std::printf("config: %s: ok\n", config.file.c_str());
    std::printf("token: label \"%s\", serial %s, model %s, manufacturer %s; logged in\n", info.label.c_str(),
                info.serial.c_str(), info.model.c_str(), info.manufacturer.c_str());
    auto objects = token.pool->run([](pkcs11::SessionRef s) { return pkcs11::list_keys(s); });
    if (!objects) throw StartupError(1, objects.error().what());
    for (const auto& keyset : config.keysets) {
      int found = 0;
      for (const auto& o : *objects) {
        auto label = keyring::KeyLabel::parse(o.label);
        if (!label || label->keyset != keyset.name) continue;
        ++found;
        std::printf("keyset %s: key %s activates %s, custody %s\n", keyset.name.c_str(), o.label.c_str(),
                    rfc3339(label->activates).c_str(), o.custody.trustworthy() ? "ok" : "REFUSED");
      }
      if (found == 0)
        std::printf("keyset %s (%s): no key yet; one will be generated in the token at start\n", keyset.name.c_str(),
                    std::string(name(keyset.algorithm)).c_str());
    }
    return 0;
  } catch (const StartupError& e) {
    std::fprintf(stderr, "hsmsignd: %s\n", e.what());
    return 1;
  }
}

}  // namespace hsmsignd
