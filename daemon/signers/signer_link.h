// The front's side of one signer process: starts it (posix_spawn of this very binary in signer mode,
// so no module is ever initialised in a process that then forks), sends it requests with ids, and
// routes its answers back. When the process dies or the channel breaks, every request in flight is
// failed at once: none waits for an answer that cannot come.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "error.h"
#include "protocol/channel.h"
#include "protocol/messages.h"

namespace hsmsignd::signers {

// An answer's payload, or the error the signer (or the link) gave.
using Answer = pkcs11::Result<std::string>;
using Callback = std::function<void(Answer)>;

class SignerLink {
 public:
  // Each runs on the link's reader thread.
  struct Handlers {
    std::function<void(SignerLink&, const pkcs11::TokenInfo&, std::uint32_t sessions)> ready;
    std::function<void(SignerLink&, int status, const std::string& message)> refused;  // the fatal event
    std::function<void(SignerLink&, std::chrono::milliseconds outage, const pkcs11::Error& cause)> recovered;
    std::function<void(SignerLink&, const std::string& how)> exited;  // last: the process is reaped
  };

  // Throws std::system_error when the process cannot be started.
  SignerLink(std::size_t slot, const std::filesystem::path& config_file, Handlers handlers);
  ~SignerLink();  // closes the channel, then waits for the process (SIGKILL after a grace period)
  SignerLink(const SignerLink&) = delete;
  SignerLink& operator=(const SignerLink&) = delete;

  // Sends a frame made with id 0 (this gives it one); `done` runs on the reader thread with the answer,
  // or at once (on this thread) when the link is down.
  void call(std::string frame, Callback done);
  // The same, but the frame waits for flush() (or the next call): many requests, one write.
  void call_held(std::string frame, Callback done);
  void flush() { channel_->flush(); }
  // SIGKILL: for a signer that stopped answering.
  void kill();
  // The stop: finish() ends the channel (the signer drains and exits), wait() waits for it (SIGKILL
  // after a grace period). Stopping many: finish each, then wait for each.
  void finish();
  void wait();

  std::size_t slot() const { return slot_; }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  bool alive() const { return !dead_.load(std::memory_order_acquire); }
  // Dead, reaped, and its death reported: the link may be replaced.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  std::chrono::steady_clock::time_point started() const { return started_; }

 private:
  struct Pending {
    Callback done;
    std::chrono::steady_clock::time_point sent;
  };
  void enqueue(std::string frame, Callback done, bool hold);
  void read_loop();
  void on_frame(protocol::Frame&& frame);
  void fail_all(const std::string& why);
  std::string reap();

  const std::size_t slot_;
  Handlers handlers_;
  pid_t pid_ = -1;
  std::unique_ptr<protocol::Channel> channel_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> ready_{false}, dead_{false}, finished_{false};
  std::atomic<std::size_t> in_flight_{0};
  mutable std::mutex mutex_;
  std::unordered_map<std::uint32_t, Pending> pending_;
  std::uint32_t next_id_ = 1;
  std::string refusal_;  // the signer's fatal event, if it sent one
  std::mutex reap_mutex_;
  bool reaped_ = false;
  std::thread reader_;
};

}  // namespace hsmsignd::signers
