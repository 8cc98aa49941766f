#include "signers/signer_link.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <system_error>
#include <vector>

#include "signer/signer_process.h"

extern char** environ;

namespace hsmsignd::signers {
namespace {

using protocol::Type;

constexpr auto kExitGrace = std::chrono::seconds(5);

std::system_error os_error(const char* what) { return {errno, std::generic_category(), what}; }

// The channel's front end, above the descriptors a child is given (so that dup2 onto fd 3 always
// clears its close-on-exec flag).
int front_end_above(int fd) {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return moved;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* abbrev = ::sigabbrev_np(WTERMSIG(status));  // NULL for real-time signals
    return "killed by signal " + (abbrev ? std::string(abbrev) : std::to_string(WTERMSIG(status)));
  }
  return "stopped";
}

}  // namespace

SignerLink::SignerLink(std::size_t slot, const std::filesystem::path& config_file, Handlers handlers)
    : slot_(slot), handlers_(std::move(handlers)) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw os_error("socketpair");
  const int front = front_end_above(pair[0]);
  const int child = front_end_above(pair[1]);
  if (front < 0 || child < 0) throw os_error("fcntl");

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, child, signer::kChannelFd);
  const std::string config = config_file.string();
  std::vector<char*> argv{const_cast<char*>("hsmsignd"), const_cast<char*>("--signer"), const_cast<char*>("--config"),
                          const_cast<char*>(config.c_str()), nullptr};
  const int rc = ::posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(child);
  if (rc != 0) {
    ::close(front);
    errno = rc;
    throw os_error("posix_spawn of the signer process");
  }
  channel_ = std::make_unique<protocol::Channel>(front);
  reader_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), ("hsmsignd-link" + std::to_string(slot_)).substr(0, 15).c_str());
    read_loop();
  });
}

SignerLink::~SignerLink() {
  finish();
  wait();
}

void SignerLink::finish() { channel_->finish(); }

void SignerLink::wait() {
  // The end of the channel is the signer's stop: it finishes what it has, then exits.
  const auto give_up = std::chrono::steady_clock::now() + kExitGrace;
  while (!finished_.load() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!finished_.load()) kill();
  if (!reader_.joinable()) return;
  if (reader_.get_id() == std::this_thread::get_id()) reader_.detach();  // the last owner was a callback
  else reader_.join();
}

void SignerLink::call(std::string frame, Callback done) { enqueue(std::move(frame), std::move(done), false); }

void SignerLink::call_held(std::string frame, Callback done) { enqueue(std::move(frame), std::move(done), true); }

void SignerLink::enqueue(std::string frame, Callback done, bool hold) {
  std::uint32_t id;
  {
    std::lock_guard lock(mutex_);
    if (dead_.load()) {
      // (Outside the lock: `done` may call again.)
      id = 0;
    } else {
      id = next_id_++;
      if (next_id_ == 0) next_id_ = 1;
      pending_.emplace(id, Pending{std::move(done), std::chrono::steady_clock::now()});
      in_flight_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (id == 0) return done(pkcs11::Error::busy("signer process " + std::to_string(slot_) + " is not running"));
  std::memcpy(frame.data() + 4, &id, sizeof id);  // little-endian, as the wire has it
  if (hold) channel_->hold(std::move(frame));
  else channel_->send(std::move(frame));
}

void SignerLink::kill() {
  std::lock_guard lock(reap_mutex_);
  if (!reaped_) ::kill(pid_, SIGKILL);  // (once reaped, the pid may be another process's)
}

void SignerLink::on_frame(protocol::Frame&& frame) {
  // A WireError thrown here ends the read loop: a signer that answers nonsense is trusted with nothing more.
  protocol::Reader r(frame.payload);
  {
    if (frame.id == 0) {
      switch (static_cast<Type>(frame.type)) {
        case Type::hello: {
          auto token = protocol::read_token(r);
          const auto sessions = r.u32();
          r.end();
          ready_.store(true, std::memory_order_release);
          if (handlers_.ready) handlers_.ready(*this, token, sessions);
          return;
        }
        case Type::fatal: {
          const int status = r.u8();
          const std::string message(r.bytes(protocol::kMaxText));
          {
            std::lock_guard lock(mutex_);
            refusal_ = message;
          }
          if (handlers_.refused) handlers_.refused(*this, status, message);
          return;
        }
        case Type::recovered: {
          const auto outage = std::chrono::milliseconds(r.u64());
          const auto cause = protocol::read_error(r);
          r.end();
          if (handlers_.recovered) handlers_.recovered(*this, outage, cause);
          return;
        }
        default: throw protocol::WireError("an unknown event");
      }
    }
    Pending p;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(frame.id);
      if (it == pending_.end()) throw protocol::WireError("an answer to no request");
      p = std::move(it->second);
      pending_.erase(it);
    }
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (frame.type == static_cast<std::uint8_t>(Type::ok)) return p.done(std::move(frame.payload));
    if (frame.type != static_cast<std::uint8_t>(Type::error)) {
      p.done(pkcs11::Error::refused("the signer's answer has an unknown type"));
      throw protocol::WireError("an answer of an unknown type");
    }
    pkcs11::Error error;
    try {
      error = protocol::read_error(r);
      r.end();
    } catch (const protocol::WireError&) {
      p.done(pkcs11::Error::refused("a malformed error answer from the signer"));
      throw;
    }
    p.done(std::move(error));
  }
}

void SignerLink::read_loop() {
  const std::string why = channel_->read_frames([this](protocol::Frame&& f) { on_frame(std::move(f)); });
  dead_.store(true, std::memory_order_release);
  ready_.store(false, std::memory_order_release);
  fail_all("signer process " + std::to_string(slot_) + " stopped (" + why + ")");
  std::string how = reap();
  {
    std::lock_guard lock(mutex_);
    if (!refusal_.empty()) how += ": " + refusal_;
  }
  if (handlers_.exited) handlers_.exited(*this, how.empty() ? why : how + "; " + why);
  finished_.store(true, std::memory_order_release);
}

void SignerLink::fail_all(const std::string& why) {
  std::unordered_map<std::uint32_t, Pending> failed;
  {
    std::lock_guard lock(mutex_);
    failed.swap(pending_);
    in_flight_.store(0, std::memory_order_relaxed);
  }
  for (auto& [id, p] : failed) p.done(pkcs11::Error::busy(why));
}

// A signer whose channel ended is exiting: it may still be closing its sessions and finalising the
// module, which it is given time for. One that does not exit in that time is killed.
std::string SignerLink::reap() {
  int status = 0;
  pid_t r = 0;
  const auto give_up = std::chrono::steady_clock::now() + kExitGrace;
  for (;;) {
    r = ::waitpid(pid_, &status, WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r != 0 || std::chrono::steady_clock::now() > give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (r == 0) {
    ::kill(pid_, SIGKILL);
    do r = ::waitpid(pid_, &status, 0);
    while (r < 0 && errno == EINTR);
  }
  std::lock_guard lock(reap_mutex_);
  reaped_ = true;
  return r == pid_ ? describe(status) : std::string();
}

}  // namespace hsmsignd::signers
