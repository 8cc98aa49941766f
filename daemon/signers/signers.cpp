#include "signers/signers.h"

#include <pthread.h>

#include <future>
#include <map>

#include "log/log.h"
#include "signers/remote_token.h"

namespace hsmsignd::signers {
namespace {

using protocol::Type;
using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(60);
constexpr auto kSuperviseEvery = std::chrono::milliseconds(50);
// A signer's reader thread answers a ping at once whatever its token is doing: one that has not
// answered for this long is stopped (SIGSTOP, a livelock) and is killed and replaced.
constexpr auto kPingEvery = std::chrono::milliseconds(500);
constexpr auto kPingTimeout = std::chrono::seconds(2);
constexpr auto kLongestBackoff = std::chrono::seconds(5);
constexpr auto kStable = std::chrono::seconds(10);  // up this long, a death starts the backoff afresh

// Counters of a signer that died stay in the totals, so that they never go backwards.
void add(protocol::SignerStats& into, const protocol::SignerStats& s) {
  into.sessions_in_use += s.sessions_in_use;
  into.sessions += s.sessions;
  into.recoveries += s.recoveries;
  into.failed_recoveries += s.failed_recoveries;
  into.token_lost = into.token_lost || s.token_lost;
  for (const auto& c : s.calls) {
    auto it = std::find_if(into.calls.begin(), into.calls.end(), [&](const auto& x) { return x.function == c.function; });
    if (it == into.calls.end()) {
      into.calls.push_back(c);
      continue;
    }
    it->calls += c.calls;
    it->errors += c.errors;
    it->total_ns += c.total_ns;
    for (std::size_t i = 0; i < c.buckets.size(); ++i) it->buckets[i] += c.buckets[i];
  }
}

// The signature in a sign answer, and the time the token took for it.
pkcs11::Result<Bytes> read_signature(const Answer& answer, std::chrono::nanoseconds& signing) {
  if (!answer) return answer.error();
  try {
    protocol::Reader r(*answer);
    Bytes signature = r.byte_vector(protocol::kMaxKeyPart);
    r.u32();  // the signer's own queue: part of the round trip
    signing = std::chrono::microseconds(r.u32());
    r.end();
    return signature;
  } catch (const protocol::WireError& e) {
    return pkcs11::Error::refused(std::string("a malformed answer from the signer: ") + e.what());
  }
}

protocol::SignerStats counters_only(protocol::SignerStats s) {
  s.sessions_in_use = s.sessions = 0;
  s.token_lost = false;
  return s;
}

}  // namespace

Signers::Signers(std::filesystem::path config_file, std::size_t count, std::size_t max_in_flight)
    : config_file_(std::filesystem::absolute(config_file)),
      max_in_flight_(max_in_flight),
      ops_(std::make_unique<RemoteToken>(*this)),
      slots_(std::max<std::size_t>(count, 1)) {}

Signers::~Signers() { stop(); }

std::shared_ptr<SignerLink> Signers::spawn(std::size_t slot) {
  SignerLink::Handlers h;
  h.ready = [this](SignerLink& link, const pkcs11::TokenInfo& token, std::uint32_t sessions) {
    {
      std::lock_guard lock(mutex_);
      if (!have_token_) token_ = token;
      have_token_ = true;
    }
    log::info("signer", {{"slot", std::to_string(link.slot())}, {"pid", std::to_string(link.pid())},
                         {"state", "logged in"}, {"sessions", std::to_string(sessions)}});
    changed_.notify_all();
  };
  h.refused = [this](SignerLink& link, int status, const std::string& message) {
    std::lock_guard lock(mutex_);
    if (!started_ && !refusal_) refusal_.emplace(status, message);
    if (started_) log::error("signer", {{"slot", std::to_string(link.slot())}, {"state", "refused"}, {"reason", message}});
    changed_.notify_all();
  };
  h.recovered = [this](SignerLink& link, std::chrono::milliseconds outage, const pkcs11::Error& cause) {
    if (events_.recovered) events_.recovered(link.slot(), outage, cause);
  };
  h.exited = [this](SignerLink& link, const std::string& how) { died(link, how); };
  return std::make_shared<SignerLink>(slot, config_file_, std::move(h));
}

void Signers::start(Events events) {
  events_ = std::move(events);
  // One at a time: SoftHSM's file store, read by two processes logging in at once, can look
  // uninitialised to one of them.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    std::shared_ptr<SignerLink> link;
    try {
      link = spawn(i);
    } catch (const std::exception& e) {
      throw StartError(1, std::string("starting a signer process: ") + e.what());
    }
    std::unique_lock lock(mutex_);
    slots_[i].link = link;
    const bool settled =
        changed_.wait_for(lock, kStartTimeout, [&] { return refusal_ || link->ready() || !link->alive(); });
    if (refusal_) throw *refusal_;
    if (!settled) throw StartError(1, "signer process " + std::to_string(i) + " did not log in to the token within 60 s");
    if (!link->ready()) throw StartError(1, "signer process " + std::to_string(i) + " exited while starting");
  }
  std::lock_guard lock(mutex_);
  started_ = true;
  supervisor_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-super");
    supervise();
  });
}

void Signers::died(SignerLink& link, const std::string& how) {
  bool report;
  {
    std::lock_guard lock(mutex_);
    auto& slot = slots_[link.slot()];
    report = started_ && !stopping_;
    if (!report) return changed_.notify_all();
    ++deaths_;
    add(dead_totals_, counters_only(slot.last));
    slot.last = {};
    slot.pinging = false;
    if (Clock::now() - link.started() > kStable) slot.failures = 0;
    // The first restart is at once: the other signers carry the load meanwhile, but not for long.
    const auto backoff = slot.failures == 0 ? std::chrono::milliseconds(0)
                                            : std::min<std::chrono::milliseconds>(std::chrono::milliseconds(100L << std::min(slot.failures - 1, 6u)), kLongestBackoff);
    ++slot.failures;
    slot.restart_at = Clock::now() + backoff;
  }
  log::error("signer_died", {{"slot", std::to_string(link.slot())}, {"pid", std::to_string(link.pid())}, {"how", how}});
  if (events_.died) events_.died(link.slot(), how);
  changed_.notify_all();
}

void Signers::ping(std::size_t index, const std::shared_ptr<SignerLink>& link) {
  // (A raw pointer: the link keeps its callbacks, and must not keep itself.)
  link->call(protocol::Writer(0, static_cast<std::uint8_t>(Type::stats)).finish(), [this, index, link = link.get()](Answer a) {
    std::lock_guard lock(mutex_);
    auto& slot = slots_[index];
    if (slot.link.get() != link) return;
    slot.pinging = false;
    if (!a) return;
    try {
      protocol::Reader r(*a);
      slot.last = protocol::read_stats(r);
    } catch (const protocol::WireError&) {
      link->kill();
    }
  });
}

void Signers::shut_down_links() {
  std::vector<std::shared_ptr<SignerLink>> links;
  {
    std::lock_guard lock(mutex_);
    for (auto& s : slots_)
      if (s.link) links.push_back(std::move(s.link));
  }
  {
    std::lock_guard lock(held_mutex_);
    held_.clear();
  }
  for (auto& l : links) l->finish();  // all at once: each drains while the others do
  for (auto& l : links) l->wait();
}

void Signers::supervise() {
  supervise_until_stopped();
  shut_down_links();
}

void Signers::supervise_until_stopped() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, kSuperviseEvery, [&] { return stopping_; });
    if (stopping_) break;
    const auto now = Clock::now();
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      auto& slot = slots_[i];
      if (!slot.link || slot.link->finished()) {
        if (now < slot.restart_at) continue;
        auto old = std::move(slot.link);
        lock.unlock();
        old.reset();  // joins its reader, which has finished
        std::shared_ptr<SignerLink> fresh;
        try {
          fresh = spawn(i);
        } catch (const std::exception& e) {
          log::error("signer", {{"slot", std::to_string(i)}, {"state", "not started"}, {"reason", e.what()}});
        }
        lock.lock();
        slot.link = std::move(fresh);
        if (!slot.link) slot.restart_at = now + kLongestBackoff;
        continue;
      }
      if (!slot.link->ready()) {
        // A signer that cannot log in within the start timeout is stuck (a token that never answers).
        if (slot.link->alive() && now - slot.link->started() > kStartTimeout) slot.link->kill();
        continue;
      }
      if (slot.pinging) {
        if (now - slot.ping_sent > kPingTimeout) {
          log::error("signer", {{"slot", std::to_string(i)}, {"pid", std::to_string(slot.link->pid())},
                                {"state", "not answering"}});
          slot.link->kill();
        }
      } else if (now - slot.ping_sent >= kPingEvery) {
        slot.pinging = true;
        slot.ping_sent = now;
        auto link = slot.link;
        lock.unlock();
        ping(i, link);
        lock.lock();
      }
    }
  }
}

void Signers::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  // The supervisor shuts the links down itself: a signer it restarted dies with the thread that
  // spawned it (PR_SET_PDEATHSIG), so that thread must outlive it.
  if (supervisor_.joinable()) supervisor_.join();
  else shut_down_links();
}

std::shared_ptr<SignerLink> Signers::pick() const {
  std::lock_guard lock(mutex_);
  std::shared_ptr<SignerLink> best;
  for (const auto& s : slots_)
    if (s.link && s.link->ready() && (!best || s.link->in_flight() < best->in_flight())) best = s.link;
  return best;
}

// Key operations (list, generate, relabel, destroy, custody) all go to the first running signer: one
// process then sees every key the daemon made, even on a token that shows a process only the objects
// that existed at its C_Initialize (tpm2-pkcs11); the keyring would otherwise miss a key another signer
// generated, and make a second one.
std::shared_ptr<SignerLink> Signers::keeper() const {
  std::lock_guard lock(mutex_);
  for (const auto& s : slots_)
    if (s.link && s.link->ready()) return s.link;
  return nullptr;
}

std::size_t Signers::running() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.link && s.link->ready(); }));
}

bool Signers::submit(signing::SignJob job) {
  if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= max_in_flight_) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  auto link = pick();
  if (!link) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    job.done(pkcs11::Error::busy("no signer process is running"), std::move(job.input), {});
    return true;
  }
  auto digest = job.digest ? std::nullopt : job.signer->token_digest(job.input);
  const bool is_digest = job.digest || digest.has_value();
  const DigestScheme scheme = job.scheme.value_or(default_scheme(job.signer->algorithm()));
  std::string frame = protocol::sign_request(0, job.signer->algorithm(), is_digest, scheme, job.signer->id(),
                                             digest ? std::string_view(*digest) : std::string_view(job.input));
  auto done = [this, job = std::move(job), digest = std::move(digest), is_digest, scheme,
               sent = Clock::now()](Answer answer) mutable {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    signing::SignTimes times;
    const auto round_trip = Clock::now() - sent;
    auto signature = read_signature(answer, times.signing);
    times.queued = round_trip > times.signing ? round_trip - times.signing : std::chrono::nanoseconds(0);
    auto checked = job.signer->check(is_digest, scheme, digest ? std::string_view(*digest) : std::string_view(job.input),
                                     std::move(signature));
    job.done(std::move(checked), std::move(job.input), times);
  };
  if (!post_) {
    link->call(std::move(frame), std::move(done));
    return true;
  }
  link->call_held(std::move(frame), std::move(done));
  std::lock_guard lock(held_mutex_);
  if (std::find(held_.begin(), held_.end(), link) != held_.end()) return true;
  if (held_.empty())
    post_([this] {
      std::vector<std::shared_ptr<SignerLink>> links;
      {
        std::lock_guard lock(held_mutex_);
        links.swap(held_);
      }
      for (auto& l : links) l->flush();
    });
  held_.push_back(std::move(link));
  return true;
}

Answer Signers::call(std::string frame, std::chrono::milliseconds timeout) {
  auto link = keeper();
  if (!link) return pkcs11::Error::busy("no signer process is running");
  auto promise = std::make_shared<std::promise<Answer>>();
  auto future = promise->get_future();
  link->call(std::move(frame), [promise](Answer a) { promise->set_value(std::move(a)); });
  if (future.wait_for(timeout) != std::future_status::ready)
    return pkcs11::Error::busy("the signer process did not answer within " + std::to_string(timeout.count()) + " ms");
  return future.get();
}

pkcs11::Result<Bytes> Signers::sign(signing::CheckedSigner& signer, std::string_view message) {
  auto digest = signer.token_digest(message);
  const std::string_view data = digest ? std::string_view(*digest) : message;
  auto answer = call(protocol::sign_request(0, signer.algorithm(), digest.has_value(), signer.id(), data),
                     std::chrono::seconds(10));
  std::chrono::nanoseconds signing{};
  auto signature = read_signature(answer, signing);
  return signer.check(digest.has_value(), data, std::move(signature));
}

void Signers::collect(std::function<void(Totals)> done) {
  struct Gathering {
    std::mutex mutex;
    Totals totals;
    std::size_t waiting = 0;
    std::function<void(Totals)> done;
  };
  auto g = std::make_shared<Gathering>();
  g->done = std::move(done);
  std::vector<std::shared_ptr<SignerLink>> links;
  {
    std::lock_guard lock(mutex_);
    g->totals.stats = dead_totals_;
    g->totals.configured = slots_.size();
    g->totals.deaths = deaths_;
    for (const auto& s : slots_)
      if (s.link && s.link->ready()) links.push_back(s.link);
    g->totals.running = links.size();
    g->waiting = links.size() + 1;  // +1: the loop below, so that no answer finishes before it is done
  }
  auto one_done = [g](const protocol::SignerStats* s) {
    std::unique_lock lock(g->mutex);
    if (s) add(g->totals.stats, *s);
    if (--g->waiting > 0) return;
    lock.unlock();
    g->done(std::move(g->totals));
  };
  for (const auto& link : links)
    link->call(protocol::Writer(0, static_cast<std::uint8_t>(Type::stats)).finish(), [one_done](Answer a) {
      if (!a) return one_done(nullptr);
      try {
        protocol::Reader r(*a);
        const auto s = protocol::read_stats(r);
        one_done(&s);
      } catch (const protocol::WireError&) {
        one_done(nullptr);
      }
    });
  one_done(nullptr);
}

}  // namespace hsmsignd::signers
