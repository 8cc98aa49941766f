// The signer processes, supervised: `[token] signers` of them, each with `sessions` token sessions.
// Signatures go to the one with the fewest requests in flight. One that dies (or stops answering its
// pings) has its requests failed at once and is started again, at once the first time and then with a
// growing backoff; its death is reported to the daemon (an error line in the audit log) and counted.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "signers/signer_link.h"
#include "signing/sign_job.h"
#include "token_ops.h"

namespace hsmsignd::signers {

// A signer could not start: its exit status (2 a configuration error, 1 otherwise) and why.
struct StartError : std::runtime_error {
  int status;
  StartError(int s, const std::string& message) : std::runtime_error(message), status(s) {}
};

struct Totals {
  protocol::SignerStats stats;  // summed over the signers, the ones that died included
  std::size_t running = 0, configured = 0;
  std::uint64_t deaths = 0;
};

class Signers {
 public:
  struct Events {
    std::function<void(std::size_t slot, const std::string& how)> died;
    std::function<void(std::size_t slot, std::chrono::milliseconds outage, const pkcs11::Error& cause)> recovered;
  };

  Signers(std::filesystem::path config_file, std::size_t count, std::size_t max_in_flight);
  ~Signers();
  Signers(const Signers&) = delete;
  Signers& operator=(const Signers&) = delete;

  // Starts every signer and waits until each has logged in. Throws StartError.
  void start(Events events);
  // Lets each signer finish what it was sent, then waits for it to exit.
  void stop();

  // False when max_in_flight signatures are already out: the caller answers 429.
  bool submit(signing::SignJob job);
  // With a poster (the I/O thread's post), a submit's frame waits for a task posted behind the
  // requests already read, and all go to a signer in one write.
  void batch_with(std::function<void(std::function<void()>)> post) { post_ = std::move(post); }
  // A signature made and checked before this returns: for the audit log's checkpoints.
  pkcs11::Result<Bytes> sign(signing::CheckedSigner& signer, std::string_view message);
  // Key operations, each on one signer, waited for.
  pkcs11::TokenOps& token_ops() { return *ops_; }
  const pkcs11::TokenInfo& token() const { return token_; }

  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  std::size_t running() const;
  // Asks every running signer for its counters; `done` runs once all have answered (on some thread).
  void collect(std::function<void(Totals)> done);

  // The answer to one request, waited for at most `timeout`.
  Answer call(std::string frame, std::chrono::milliseconds timeout);

 private:
  struct Slot {
    std::shared_ptr<SignerLink> link;
    protocol::SignerStats last;  // its latest answer to a ping
    std::chrono::steady_clock::time_point restart_at{}, ping_sent{};
    bool pinging = false;
    unsigned failures = 0;  // deaths in a row, for the backoff
  };
  std::shared_ptr<SignerLink> spawn(std::size_t slot);
  std::shared_ptr<SignerLink> pick() const;    // the fewest signatures in flight
  std::shared_ptr<SignerLink> keeper() const;  // the first running: for key operations
  void supervise();
  void supervise_until_stopped();
  void shut_down_links();
  void ping(std::size_t slot, const std::shared_ptr<SignerLink>& link);
  void died(SignerLink& link, const std::string& how);

  const std::filesystem::path config_file_;
  const std::size_t max_in_flight_;
  Events events_;
  std::unique_ptr<pkcs11::TokenOps> ops_;
  pkcs11::TokenInfo token_;
  std::atomic<std::size_t> in_flight_{0};
  std::function<void(std::function<void()>)> post_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;
  protocol::SignerStats dead_totals_;  // what the signers that died had counted
  std::uint64_t deaths_ = 0;
  bool started_ = false, stopping_ = false, have_token_ = false;
  std::optional<StartError> refusal_;
  std::mutex held_mutex_;
  std::vector<std::shared_ptr<SignerLink>> held_;  // links with frames waiting for the posted flush
  std::thread supervisor_;
};

}  // namespace hsmsignd::signers
