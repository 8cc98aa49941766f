#include "daemon.h"

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without including it

#include <sys/resource.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <optional>

#include "api/admin_api.h"
#include "api/health.h"
#include "audit/audit_key.h"
#include "audit/chain.h"
#include "audit/audit_log.h"
#include "crypto/digest.h"
#include "jose/base64url.h"
#include "jose/jwk.h"
#include "api/issuer_api.h"
#include "api/token_api.h"
#include "common/rfc3339.h"
#include "common/thread_priority.h"
#include "jwks/jwks_file.h"
#include "keyring/keyring.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "revocation/revocations.h"
#include "revocation/redis_store.h"
#include "revocation/sqlite_store.h"
#include "status_list/status_lists.h"
#include "server/inherited_sockets.h"
#include "server/listeners.h"
#include "signers/signers.h"

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

server::Limits limits_from(const config::Config& c, std::size_t max_connections) {
  server::Limits l;
  l.max_body = c.server.max_body;
  l.request_timeout = c.server.request_timeout;
  l.idle_timeout = c.server.idle_timeout;
  l.max_connections = max_connections;
  return l;
}

// Each listener has its own cap, so that the JWKS listener, open to every local process, cannot use up
// what issuers and the admin socket need.
constexpr std::size_t kIssuerConnections = 4096, kAdminConnections = 64, kJwksConnections = 1024;

std::unique_ptr<audit::AuditLog> open_audit(const config::Config& config) {
  try {
    // The log's folder is the daemon's own (systemd's LogsDirectory= makes it too): owner only.
    std::filesystem::create_directories(config.audit.file.parent_path());
    return std::make_unique<audit::AuditLog>(config.audit.file, config.audit.max_size);
  } catch (const std::exception& e) {
    throw StartupError(1, e.what());
  }
}

audit::Record to_record(const keyring::Event& e) {
  audit::Record r{e.type, true};
  auto members = r.add();
  if (!e.keyset.empty()) members.string("keyset", e.keyset);
  if (!e.kid.empty()) members.string("kid", e.kid);
  if (!e.detail.empty()) members.string(e.type == "error" ? "reason" : "label", e.detail);
  return r;
}

std::string file_sha256(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return jose::base64url_encode(crypto::sha256(as_bytes(content)));
}

// The Redis password: the file's first line, never logged. No file: no AUTH.
std::string redis_password(const std::filesystem::path& file) {
  if (file.empty()) return {};
  std::ifstream in(file);
  std::string password;
  if (!in || !std::getline(in, password)) throw std::runtime_error("cannot read the Redis password from " + file.string());
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

std::unique_ptr<revocation::Revocations> open_revocations(const config::Config& config) {
  try {
    std::unique_ptr<revocation::Store> store;
    // The state folder holds what must survive restarts: the daemon's own, owner only when it makes it
    // (systemd-tmpfiles makes /var/lib/hsmsignd 0700 for the service).
    if (std::filesystem::create_directories(config.state.dir))
      std::filesystem::permissions(config.state.dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
    if (config.revocation.redis.empty()) {
      store = std::make_unique<revocation::SqliteStore>(config.state.dir / "revocations.sqlite3");
    } else {
      store = std::make_unique<revocation::RedisStore>(*revocation::parse_redis_address(config.revocation.redis).address,
                                                       redis_password(config.revocation.redis_password_file),
                                                       config.verify.clock_tolerance.count(), config.longest_ttl().count());
    }
    return std::make_unique<revocation::Revocations>(std::move(store), config.revocation.fail_open_for);
  } catch (const std::exception& e) {
    throw StartupError(1, std::string("the revocation store: ") + e.what());
  }
}

std::unique_ptr<status_list::StatusLists> open_status_lists(const config::Config& config) {
  if (!config.revocation.status_list) return nullptr;
  try {
    // Each host keeps its own lists, even when the revocations are shared on Redis.
    return std::make_unique<status_list::StatusLists>(
        config.state.dir / "status-lists.sqlite3", config.revocation.status_list_uri,
        config.revocation.status_list_window.count(), (config.longest_ttl() + config.verify.clock_tolerance).count(),
        now().time_since_epoch().count());
  } catch (const std::exception& e) {
    throw StartupError(1, std::string("the status lists: ") + e.what());
  }
}

// The next window's lists are reserved when it begins within two purge periods.
constexpr std::int64_t kStatusListLookahead = 120;

std::vector<std::string> status_list_keysets(const config::Config& c) {
  std::vector<std::string> out;
  // A tls keyset issues no JWTs, and its keys, in no JWKS, must sign no list a verifier would trust.
  for (const auto& k : c.keysets)
    if (k.usage == config::Usage::jwt) out.push_back(k.name);
  return out;
}

std::vector<metrics::Metrics::Keyset> metric_keysets(const config::Config& c) {
  std::vector<metrics::Metrics::Keyset> out;
  for (const auto& k : c.keysets) out.push_back({k.name, k.algorithm});
  return out;
}

}  // namespace

struct Daemon::Parts {
  explicit Parts(const config::Config& config)
      : signers(config.file, config.token.signers, kMaxQueuedSignatures),
        audit(open_audit(config)),
        keyring(signers.token_ops(), config, now,
                [this](const keyring::Event& e) {
                  log::write(e.type == "error" ? log::Level::error : log::Level::info, e.type,
                             {{"keyset", e.keyset}, {"kid", e.kid}, {"detail", e.detail}});
                  audit->append(to_record(e));
                }),
        revocations(open_revocations(config)),
        status_lists(open_status_lists(config)),
        metrics(metric_keysets(config)),
        limits(limits_from(config, kIssuerConnections)),
        admin_limits(limits_from(config, kAdminConnections)),
        jwks_limits(limits_from(config, kJwksConnections)),
        tokens(config, keyring, *revocations, metrics, *audit),
        api({config, keyring, signers, metrics, health, *audit, *revocations, tokens, status_lists.get(),
             in_flight.connections}),
        admin(config, signers, keyring, metrics, *audit, tokens) {}

  signers::Signers signers;  // first: started before anything could touch a token
  std::unique_ptr<audit::AuditLog> audit;
  keyring::Keyring keyring;
  std::unique_ptr<revocation::Revocations> revocations;
  std::unique_ptr<status_list::StatusLists> status_lists;
  metrics::Metrics metrics;
  api::Health health;
  server::Limits limits, admin_limits, jwks_limits;
  server::InFlight in_flight;
  api::TokenApi tokens;
  api::IssuerApi api;
  api::AdminApi admin;
  asio::io_context io{1};
  std::optional<server::UnixListener> issuer;
  std::optional<server::UnixListener> admin_socket;
  std::optional<server::TcpListener> jwks;
  // After the stop line, no signer event reaches the audit log: set, and checked, under the mutex.
  std::mutex stop_mutex;
  bool stopped = false;
};

Daemon::Daemon(config::Config config) : config_(std::move(config)) {}

Daemon::~Daemon() {
  if (!parts_) return;
  parts_->keyring.stop();
  parts_->revocations->stop();
  parts_->audit->stop();
  parts_->signers.stop();
}

void Daemon::start_signers() {
  auto& p = *parts_;
  signers::Signers::Events events;
  events.died = [this](std::size_t slot, const std::string& how) {
    auto& p = *parts_;
    std::lock_guard lock(p.stop_mutex);
    if (p.stopped) return;
    audit::Record died{"error", true};
    died.add().number("signer", static_cast<std::int64_t>(slot)).string("reason", "signer process " + how);
    p.audit->append(std::move(died));
  };
  events.recovered = [this](std::size_t slot, std::chrono::milliseconds outage, const pkcs11::Error& cause) {
    auto& p = *parts_;
    std::lock_guard lock(p.stop_mutex);
    if (p.stopped) return;
    const auto& token = p.signers.token();
    // A device that was away and answers again is healthy; one re-initialised because it kept failing
    // is healthy only once it signs again.
    if (!cause.device_fault()) p.health.token_ok();
    log::info("token_recovered", {{"token", token.label}, {"cause", cause.what()}, {"outage_ms", std::to_string(outage.count())},
                                  {"signer", std::to_string(slot)}});
    audit::Record login{"login", true};
    login.add()
        .string("token", token.label)
        .string("serial", token.serial)
        .boolean("recovered", true)
        .number("outage_ms", outage.count())
        .number("signer", static_cast<std::int64_t>(slot));
    p.audit->append(std::move(login));
  };
  try {
    p.signers.start(std::move(events));
  } catch (const signers::StartError& e) {
    throw StartupError(e.status, e.what());
  }
  const auto& token = p.signers.token();
  log::info("login", {{"token", token.label}, {"serial", token.serial}, {"model", token.model},
                      {"signers", std::to_string(config_.token.signers)}, {"sessions", std::to_string(config_.token.sessions)}});
}

void Daemon::start() {
  raise_descriptor_limit();
  parts_ = std::make_unique<Parts>(config_);
  auto& p = *parts_;
  start_signers();
  const auto& token = p.signers.token();
  audit::Record start{"start", true}, config{"config", true}, login{"login", true};
  start.add().number("pid", ::getpid()).number("uid", ::geteuid());
  config.add().string("file", config_.file.string()).string("sha256", file_sha256(config_.file));
  login.add().string("token", token.label).string("serial", token.serial).string("model", token.model);
  p.audit->append(std::move(start));
  p.audit->append(std::move(config));
  p.audit->append(std::move(login));

  auto audit_key = audit::open_audit_key(p.signers.token_ops(), keyring::custody_policy(config_),
                                         [&](const std::string& kid, const std::string& label) {
    audit::Record keygen{"keygen", true};
    keygen.add().string("keyset", audit::kAuditKeyset).string("kid", kid).string("label", label);
    p.audit->append(std::move(keygen));
  });
  if (!audit_key) throw StartupError(1, "the audit key: " + audit_key.error().what());
  p.audit->set_checkpoint_signer({audit_key->kid, "ES256", [&signers = p.signers, signer = audit_key->signer](const std::string& message) {
                                    auto s = signers.sign(*signer, message);
                                    return s ? std::optional<Bytes>(std::move(*s)) : std::nullopt;
                                  }});
  const auto key_file = audit::public_key_path(config_.audit.file);
  if (auto ec = jwks::write_atomically(key_file, jose::to_published_jwk(audit_key->signer->public_key(), audit_key->kid).dump()))
    throw StartupError(1, "writing " + key_file.string() + ": " + ec.message());

  if (auto loaded = p.keyring.reconcile(); !loaded) throw StartupError(1, "loading keys: " + loaded.error().what());
  auto view = p.keyring.view();
  for (const auto& k : view->keys)
    log::info("key", {{"keyset", k.keyset}, {"kid", k.kid}, {"state", std::string(keyring::name(k.schedule.state))},
                      {"activates", rfc3339(k.schedule.activates)}});
  if (!config_.jwks.file.empty()) {
    if (auto ec = jwks::write_atomically(config_.jwks.file, view->jwks))
      throw StartupError(1, "writing " + config_.jwks.file.string() + ": " + ec.message());
  }

  try {
    p.revocations->start([this](bool up, const std::string& reason) {
      auto& p = *parts_;
      if (up) return log::info("revocation_store", {{"state", "up"}});
      // One line per outage: the store reports changes, not every failed attempt.
      log::error("revocation_store", {{"state", "down"}, {"reason", reason}});
      audit::Record down{"error", true};
      down.add().string("store", "revocation").string("reason", reason);
      p.audit->append(std::move(down));
    }, [this](const revocation::Entry& e) {
      if (parts_->status_lists && e.status_idx >= 0) parts_->status_lists->mark(e.status_uri, e.status_idx);
    });
  } catch (const std::exception& e) {
    throw StartupError(1, std::string("the revocation store: ") + e.what());
  }
  log::info("revocations", {{"entries", std::to_string(p.revocations->entries())}});

  auto inherited = server::InheritedSockets::take();
  const bool activated = inherited.count() > 0;
  try {
    p.issuer.emplace(
        p.io, config_.server.socket, config_.server.socket_mode,
        [this](const policy::Peer& peer) -> server::Handler {
          const config::ClientConfig* client = policy::find_client(config_, peer);
          return [this, peer, client](const api::HttpRequest& request, api::Reply reply) {
            parts_->api.handle(peer, client, request, std::move(reply));
          };
        },
        p.limits, p.in_flight, inherited.adopt_unix(config_.server.socket));
    p.admin_socket.emplace(
        p.io, config_.server.admin_socket, 0600,
        [this](const policy::Peer& peer) -> server::Handler {
          return [this, peer](const api::HttpRequest& request, api::Reply reply) {
            parts_->admin.handle(peer, request, std::move(reply));
          };
        },
        p.admin_limits, p.in_flight, inherited.adopt_unix(config_.server.admin_socket));
    if (!config_.jwks.listen.empty())
      p.jwks.emplace(
          p.io, config_.jwks.listen_host, config_.jwks.listen_port,
          [this](const api::HttpRequest& request, api::Reply reply) { parts_->api.handle_public(request, std::move(reply)); },
          p.jwks_limits, p.in_flight, inherited.adopt_tcp(config_.jwks.listen_host, config_.jwks.listen_port));
  } catch (const std::exception& e) {
    throw StartupError(1, e.what());
  }
  if (auto extra = inherited.unclaimed(); !extra.empty()) {
    std::string list;
    for (const auto& e : extra) list += (list.empty() ? "" : ", ") + e;
    throw StartupError(2, "systemd passed sockets no configured address matches: " + list +
                              " (the socket unit's ListenStream= and the [server]/[jwks] addresses must agree)");
  }
  // Requests read in one turn of the event loop go to the signers together, in one write each.
  p.signers.batch_with([this](std::function<void()> flush) { asio::post(parts_->io, std::move(flush)); });
  p.issuer->start();
  p.admin_socket->start();
  if (p.jwks) p.jwks->start();
  if (p.status_lists) {
    // Reserved before the first request, and from then on ahead of need on the keyring's thread.
    p.status_lists->prepare_windows(status_list_keysets(config_), now().time_since_epoch().count(), kStatusListLookahead);
    p.status_lists->set_background([this](std::function<void()> task) { parts_->keyring.post(std::move(task)); });
  }
  // From here on the lifecycle thread makes the transitions and republishes the JWKS file.
  p.keyring.start([file = config_.jwks.file](const keyring::View& v) {
    if (file.empty()) return;
    if (auto ec = jwks::write_atomically(file, v.jwks)) log::error("jwks_file", {{"path", file.string()}, {"error", ec.message()}});
  });
  log::info("start", {{"socket", config_.server.socket.string()},
                      {"jwks", config_.jwks.listen.empty() ? std::string("off") : config_.jwks.listen},
                      {"socket_activation", activated ? "yes" : "no"}});
}

int Daemon::run() {
  auto& p = *parts_;
  asio::signal_set signals(p.io, SIGTERM, SIGINT);
  asio::signal_set hangup(p.io, SIGHUP);
  asio::steady_timer drain(p.io), checkpoints(p.io), watchdog(p.io), refusals(p.io), purges(p.io);
  std::function<void()> on_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      log::info("audit_rotate");
      p.audit->rotate();
      on_hangup();
    });
  };
  on_hangup();
  std::function<void()> next_checkpoint = [&] {
    checkpoints.expires_after(config_.audit.checkpoint_every);
    checkpoints.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      p.audit->checkpoint();
      next_checkpoint();
    });
  };
  next_checkpoint();
  // max_rate refusals reach the audit log as one line per client per second, not one per request.
  std::function<void()> next_refusal_report = [&] {
    refusals.expires_after(std::chrono::seconds(1));
    refusals.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      p.api.report_refusals();
      next_refusal_report();
    });
  };
  if (p.api.rate_limited_clients()) next_refusal_report();
  // Revocations of tokens that have expired can never matter again: the store stays bounded.
  std::function<void()> next_purge = [&] {
    purges.expires_after(std::chrono::seconds(60));
    purges.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      p.revocations->purge(now().time_since_epoch().count());
      // The lists' commits (fsyncs) happen on the keyring's thread, never on this one.
      if (p.status_lists)
        p.keyring.post([this] {
          auto& p = *parts_;
          const auto t = now().time_since_epoch().count();
          p.status_lists->retire(t);
          p.status_lists->prepare_windows(status_list_keysets(config_), t, kStatusListLookahead);
          p.api.forget_retired_lists();
        });
      next_purge();
    });
  };
  next_purge();
  std::function<void()> wait_for_requests;
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("stop", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    ::sd_notify(0, "STOPPING=1");
    p.issuer->close();
    p.admin_socket->close();
    if (p.jwks) p.jwks->close();
    hangup.cancel();
    checkpoints.cancel();
    watchdog.cancel();
    refusals.cancel();
    purges.cancel();
    const auto give_up = std::chrono::steady_clock::now() + kShutdownGrace;
    wait_for_requests = [&, give_up] {
      if (p.in_flight.requests.load() == 0 || std::chrono::steady_clock::now() > give_up) return p.io.stop();
      drain.expires_after(std::chrono::milliseconds(20));
      drain.async_wait([&](const boost::system::error_code&) { wait_for_requests(); });
    };
    wait_for_requests();
  });
  // systemd's watchdog: a ping from the I/O thread, every half period, proves the event loop turns.
  std::uint64_t watchdog_usec = 0;
  std::function<void()> next_ping = [&] {
    ::sd_notify(0, "WATCHDOG=1");
    watchdog.expires_after(std::chrono::microseconds(watchdog_usec / 2));
    watchdog.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) next_ping();
    });
  };
  if (::sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) next_ping();
  ::sd_notifyf(0, "READY=1\nSTATUS=serving %zu keyset(s) from token \"%s\"", config_.keysets.size(),
               p.signers.token().label.c_str());
  prefer_short_slices();  // the I/O thread: every request passes through it twice
  p.io.run();
  p.keyring.stop();
  p.revocations->stop();
  p.api.report_refusals();
  // The last lines: the stop, and a checkpoint that covers everything before it.
  audit::Record stop{"stop", true};
  stop.add().number("pid", ::getpid());
  {
    std::lock_guard lock(p.stop_mutex);
    p.stopped = true;  // no recovery or death line may follow the stop line
    p.audit->append(std::move(stop));
  }
  p.audit->checkpoint();  // signed by a signer: they stop after it
  const bool written = p.audit->flush();
  if (!written) log::error("audit_incomplete", {{"reason", "the last audit lines could not be written: " + p.audit->failure()}});
  p.audit->stop();
  p.signers.stop();
  return written ? 0 : 1;
}

int Daemon::check(const config::Config& config) {
  try {
    // One signer process opens the token, as when serving: --check never loads the module here either.
    signers::Signers signers(config.file, 1, 1);
    try {
      signers.start({});
    } catch (const signers::StartError& e) {
      throw StartupError(e.status, e.what());
    }
    const auto& info = signers.token();
    std::printf("config: %s: ok\n", config.file.c_str());
    std::printf("token: label \"%s\", serial %s, model %s, manufacturer %s; logged in\n", info.label.c_str(),
                info.serial.c_str(), info.model.c_str(), info.manufacturer.c_str());
    auto objects = signers.token_ops().list_keys();
    if (!objects) throw StartupError(1, objects.error().what());
    for (const auto& keyset : config.keysets) {
      // What the keyring will use and refuse, by the keyring's own rule.
      const auto found = keyring::keys_of(keyset.name, keyset.algorithm, *objects, keyring::custody_policy(config));
      for (const auto& [object, label] : found.keys)
        std::printf("keyset %s: key %s activates %s: ok\n", keyset.name.c_str(), object->label.c_str(),
                    rfc3339(label.activates).c_str());
      for (const auto& refused : found.refused)
        std::printf("keyset %s: key %s: REFUSED (%s)\n", keyset.name.c_str(), refused.object->label.c_str(),
                    std::string(refused.reason).c_str());
      if (found.keys.empty() && found.refused.empty())
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
