#include "signer/signer_process.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <deque>
#include <optional>
#include <thread>

#include "audit/audit_key.h"
#include "common/hex.h"
#include "keyring/key_label.h"
#include "log/log.h"
#include "module.h"
#include "pin.h"
#include "protocol/channel.h"
#include "protocol/messages.h"
#include "session_pool.h"
#include "signer/key_cache.h"
#include "signer/sign_queue.h"
#include "signer/token_watch.h"
#include "token.h"
#include "token_ops.h"

namespace hsmsignd::signer {
namespace {

using protocol::Type;

// Queued signatures beyond what the sessions are making: the front bounds what it sends, this bounds
// what a confused front could make this process hold.
constexpr std::size_t kMaxQueued = 8192;
constexpr auto kTokenProbeInterval = std::chrono::milliseconds(250);
constexpr int kFindAttempts = 40;

struct Opened {
  std::shared_ptr<pkcs11::Module> module;
  std::unique_ptr<pkcs11::SessionPool> pool;
  pkcs11::SigningRules rules;
};

struct Refusal {
  int status;
  std::string message;
};

// What the configured keysets, and the audit key's ES256 checkpoints, ask of the token.
std::vector<pkcs11::KeysetNeeds> needs(const config::Config& config) {
  std::vector<pkcs11::KeysetNeeds> out;
  for (const auto& k : config.keysets)
    out.push_back({k.name, k.algorithm, k.rsa_bits, k.usage == config::Usage::tls});
  out.push_back({std::string(audit::kAuditKeyset), Algorithm::ES256, 2048, false});
  return out;
}

// Every keyset the token cannot serve is named in one refusal (also what `hsmsignd --check` prints);
// each fallback is logged once, at start.
pkcs11::SignPlan plan_for(const pkcs11::Module& module, const pkcs11::TokenInfo& token, const config::Config& config) {
  auto offered = pkcs11::mechanisms(module, token.slot);
  if (!offered) throw Refusal{1, offered.error().what()};
  const auto capabilities = pkcs11::check_capabilities(*offered, needs(config));
  if (!capabilities.refusals.empty()) {
    std::string message = "token \"" + token.label + "\" cannot serve every keyset: ";
    for (std::size_t i = 0; i < capabilities.refusals.size(); ++i)
      message += (i ? "; " : "") + capabilities.refusals[i];
    throw Refusal{1, message};
  }
  for (const auto& fallback : capabilities.fallbacks) log::info("mechanism_fallback", {{"detail", fallback}});
  return capabilities.plan;
}

Opened open_token(const config::Config& config) {
  auto fail = [](const pkcs11::Error& e) { return Refusal{e.kind == pkcs11::ErrorKind::config ? 2 : 1, e.what()}; };
  auto module = pkcs11::Module::load(config.token.module, config.token.init_args);
  if (!module) throw fail(module.error());
  auto token = pkcs11::find_token(**module, {config.token.label, config.token.serial});
  // SoftHSM keeps the token in files that another signer may be writing (a login, a new key): read at
  // that moment the token can look uninitialised. Look again for a little while before giving up.
  for (int i = 0; i < kFindAttempts && !token && token.error().kind == pkcs11::ErrorKind::not_found; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (auto ok = (*module)->reinitialize(); !ok) throw fail(ok.error());
    token = pkcs11::find_token(**module, {config.token.label, config.token.serial});
  }
  if (!token) throw fail(token.error());
  if (config.token.pin_file.empty())
    throw Refusal{2, config.file.string() + ": token.pin_file: not set, and $CREDENTIALS_DIRECTORY is not set "
                     "either: set pin_file, or start hsmsignd under systemd with LoadCredential=pin:..."};
  auto pin = pkcs11::Pin::read_file(config.token.pin_file);
  if (!pin) throw fail(pin.error());
  const pkcs11::SigningRules rules{plan_for(**module, *token, config), {config.token.require_local}};
  auto pool = pkcs11::SessionPool::open(*module, *token, std::move(*pin), {config.token.sessions});
  if (!pool) throw fail(pool.error());
  return {std::move(*module), std::move(*pool), rules};
}

// One thread for the key operations (generation, listing, destruction): they take long, and must not
// hold up signatures or the answers to stats.
class TaskThread {
 public:
  TaskThread() : thread_([this] { loop(); }) {}
  ~TaskThread() { stop(); }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-keys");
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

std::string ok_frame(std::uint32_t id) { return protocol::Writer(id, static_cast<std::uint8_t>(Type::ok)).finish(); }

template <class T, class Write>
std::string answer(std::uint32_t id, const pkcs11::Result<T>& r, Write write) {
  if (!r) return protocol::error_frame(id, r.error());
  protocol::Writer w(id, static_cast<std::uint8_t>(Type::ok));
  write(w, *r);
  return w.finish();
}

std::string answer(std::uint32_t id, const pkcs11::Status& r) {
  return r ? ok_frame(id) : protocol::error_frame(id, r.error());
}

std::uint32_t micros(std::chrono::nanoseconds d) {
  return static_cast<std::uint32_t>(std::min<std::int64_t>(d.count() / 1000, UINT32_MAX));
}

class Server {
 public:
  Server(const config::Config& config, protocol::Channel& channel, pkcs11::SessionPool& pool,
         const pkcs11::SigningRules& rules)
      : config_(config), channel_(channel), pool_(pool), token_(pool), keys_(pool, config, rules),
        queue_(pool.size(), kMaxQueued) {}

  void handle(protocol::Frame&& frame) {
    const auto id = frame.id;
    try {
      protocol::Reader r(frame.payload);
      switch (static_cast<Type>(frame.type)) {
        case Type::sign: return sign(id, protocol::read_sign_request(r));
        case Type::stats: return r.end(), stats(id);
        case Type::list_keys:
          r.end();
          return tasks_.post([this, id] {
            channel_.send(answer(id, token_.list_keys(), [](auto& w, const auto& v) { protocol::write_keys(w, v); }));
          });
        case Type::list_public_keys:
          r.end();
          return tasks_.post([this, id] {
            channel_.send(answer(id, token_.list_public_keys(),
                                 [](auto& w, const auto& v) { protocol::write_public_objects(w, v); }));
          });
        case Type::generate: {
          auto spec = protocol::read_key_spec(r);
          if (auto refused = refuse_generation(spec)) return (void)channel_.send(protocol::error_frame(id, *refused));
          return tasks_.post([this, id, spec = std::move(spec)] {
            channel_.send(answer(id, token_.generate_key_pair(spec), [](auto& w, const auto& k) { protocol::write_key(w, k); }));
          });
        }
        case Type::export_public_key: {
          Bytes key = r.byte_vector(protocol::kMaxId);
          const Algorithm algorithm = protocol::read_algorithm(r);
          r.end();
          return tasks_.post([this, id, key = std::move(key), algorithm] {
            channel_.send(answer(id, token_.export_public_key(key, algorithm),
                                 [](auto& w, const auto& k) { protocol::write_public_key(w, k); }));
          });
        }
        case Type::set_label: {
          Bytes key = r.byte_vector(protocol::kMaxId);
          std::string label(r.bytes(protocol::kMaxLabel));
          r.end();
          return tasks_.post([this, id, key = std::move(key), label = std::move(label)] {
            keys_.forget(key);
            channel_.send(answer(id, retire(key, label)));
          });
        }
        case Type::destroy: {
          Bytes key = r.byte_vector(protocol::kMaxId);
          r.end();
          return tasks_.post([this, id, key = std::move(key)] {
            keys_.forget(key);
            channel_.send(answer(id, destroy(key)));
          });
        }
        default:
          channel_.send(protocol::error_frame(id, pkcs11::Error::refused("no request of type " + std::to_string(frame.type))));
      }
    } catch (const protocol::WireError& e) {
      channel_.send(protocol::error_frame(id, pkcs11::Error::refused(std::string("a malformed request: ") + e.what())));
    }
  }

  void stop() {
    queue_.stop();
    tasks_.stop();
  }

 private:
  // Key operations as the front asks for them, and no other: a key made for a configured keyset with
  // its algorithm and size; a relabel that retires a key. (Destruction is by CKA_ID, unchecked.)
  std::optional<pkcs11::Error> refuse_generation(const pkcs11::KeySpec& spec) const {
    const auto label = keyring::KeyLabel::parse(spec.label);
    if (!label) return pkcs11::Error::refused("a new key must have one of hsmsignd's labels");
    const auto algorithm = keyset_algorithm(config_, label->keyset);
    if (!algorithm) return pkcs11::Error::refused("keyset \"" + label->keyset + "\" is not configured");
    if (*algorithm != spec.algorithm)
      return pkcs11::Error::refused("keyset \"" + label->keyset + "\" signs with " + std::string(name(*algorithm)));
    const auto* keyset = config_.keyset(label->keyset);
    if (key_type(spec.algorithm) == KeyType::RSA && keyset && keyset->rsa_bits != spec.rsa_bits)
      return pkcs11::Error::refused("keyset \"" + label->keyset + "\" has RSA keys of " + std::to_string(keyset->rsa_bits) + " bits");
    return std::nullopt;
  }

  // A relabel may only say that the key is retired: `label` is its label now with "/retired", and only
  // objects that have that label now are changed (no token read beyond the search).
  pkcs11::Status retire(ByteView key, const std::string& label) {
    auto after = keyring::KeyLabel::parse(label);
    if (!after || !after->retired) return pkcs11::Error::refused("a key's label may only change to say that it is retired");
    keyring::KeyLabel before = *after;
    before.retired = false;
    if (before.str() == label || after->str() != label)
      return pkcs11::Error::refused("a key's label may only change to say that it is retired");
    auto done = pool_.run([&](pkcs11::SessionRef s) { return pkcs11::relabel(s, key, before.str(), label); });
    if (!done && done.error().kind == pkcs11::ErrorKind::not_found)
      return pkcs11::Error::refused("no key with that CKA_ID is labelled " + before.str() + ": only a key's own label may be retired");
    return done;
  }

  // A key the TPM still holds busy after a failed operation cannot be destroyed until the module is
  // re-initialised (token_rules): once, and only for the failures a re-initialisation can cure.
  pkcs11::Status destroy(ByteView key) {
    auto done = token_.destroy_key(key);
    if (done || !pkcs11::destroy_retry_after_reinitialisation(done.error())) return done;
    log::warning("destroy_retry", {{"key", hex(key)}, {"reason", done.error().what()}});
    if (auto ok = pool_.reinitialize(done.error()); !ok) {
      log::error("destroy_retry_failed", {{"key", hex(key)}, {"reason", ok.error().what()}});
      return done;
    }
    return token_.destroy_key(key);
  }

  void sign(std::uint32_t id, const protocol::SignRequest& request) {
    SignJob job{request.algorithm, {}, {}};
    job.run = [this, id, algorithm = request.algorithm, digest = request.digest, scheme = request.scheme,
               key = request.key_id, data = std::string(request.data)](std::chrono::nanoseconds queued) {
      const auto started = std::chrono::steady_clock::now();
      auto signer = keys_.get(key, algorithm, scheme);
      pkcs11::Result<Bytes> signature = !signer ? pkcs11::Result<Bytes>(signer.error())
                                        : digest ? (*signer)->sign_digest(as_bytes(data), scheme)
                                                 : (*signer)->sign(as_bytes(data));
      if (!signature) return (void)channel_.send(protocol::error_frame(id, signature.error()));
      channel_.send(protocol::Writer(id, static_cast<std::uint8_t>(Type::ok))
                        .bytes(*signature)
                        .u32(micros(queued))
                        .u32(micros(std::chrono::steady_clock::now() - started))
                        .finish());
    };
    if (!queue_.submit(std::move(job)))
      channel_.send(protocol::error_frame(id, pkcs11::Error::busy("too many signatures are queued in the signer")));
  }

  void stats(std::uint32_t id) {
    protocol::SignerStats s;
    s.sessions_in_use = static_cast<std::uint32_t>(pool_.in_use());
    s.sessions = static_cast<std::uint32_t>(pool_.size());
    s.recoveries = pool_.recoveries();
    s.failed_recoveries = pool_.failed_recoveries();
    s.token_lost = pool_.token_lost();
    s.calls = pkcs11::call_stats();
    protocol::Writer w(id, static_cast<std::uint8_t>(Type::ok));
    protocol::write_stats(w, s);
    channel_.send(w.finish());
  }

  const config::Config& config_;
  protocol::Channel& channel_;
  pkcs11::SessionPool& pool_;
  pkcs11::LocalToken token_;
  KeyCache keys_;
  SignQueue queue_;
  TaskThread tasks_;
};

// The signer dies with the front, and the front's signals are not its own: on SIGTERM the front
// finishes what is in flight, then closes the channel, and that is this process's stop.
// (Should the front die first, its end of the channel closes, and that too ends this process.)
void detach_from_front_signals() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  // A module that talks over a socket may write to a peer that is gone: p11-kit-client does, with
  // write(2), when `p11-kit server` dies, and the default SIGPIPE would kill this process and every
  // signature in it. Ignored, the write fails with EPIPE and the module answers CKR_DEVICE_ERROR, which
  // the session pool turns into a re-initialisation.
  std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace

int run(const config::Config& config) {
  struct stat st {};
  if (::fstat(kChannelFd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    std::fputs("hsmsignd: --signer is started by hsmsignd itself, with its channel on fd 3\n", stderr);
    return 2;
  }
  detach_from_front_signals();
  // Nothing of the front's but the channel: no listening socket, no inherited descriptor.
  ::close_range(kChannelFd + 1, ~0U, 0);
  ::pthread_setname_np(::pthread_self(), "hsmsignd-signer");

  protocol::Channel channel(kChannelFd);
  Opened token;
  try {
    token = open_token(config);
  } catch (const Refusal& r) {
    channel.send(protocol::Writer(0, static_cast<std::uint8_t>(Type::fatal)).u8(static_cast<std::uint8_t>(r.status))
                     .bytes(r.message).finish());
    channel.close();
    return r.status;
  }
  {
    protocol::Writer hello(0, static_cast<std::uint8_t>(Type::hello));
    protocol::write_token(hello, token.pool->token());
    hello.u32(static_cast<std::uint32_t>(token.pool->size()));
    channel.send(hello.finish());
  }
  Server server(config, channel, *token.pool, token.rules);
  TokenWatch watch(*token.pool, kTokenProbeInterval, [&](std::chrono::milliseconds outage, const pkcs11::Error& cause) {
    protocol::Writer w(0, static_cast<std::uint8_t>(Type::recovered));
    w.u64(static_cast<std::uint64_t>(outage.count()));
    protocol::write_error(w, cause);
    channel.send(w.finish());
  });
  const std::string why = channel.read_frames([&](protocol::Frame&& f) { server.handle(std::move(f)); });
  const bool impossible = why.starts_with("an impossible frame");
  if (impossible) log::error("signer_channel", {{"reason", why}});
  server.stop();
  channel.close();
  return impossible ? 3 : 0;
}

}  // namespace hsmsignd::signer
