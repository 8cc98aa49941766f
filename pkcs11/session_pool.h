// A fixed set of logged-in sessions, leased one per in-flight operation: SoftHSM (and the standard)
// forbid two threads from sharing one session.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "module.h"
#include "pin.h"
#include "token.h"

namespace hsmsignd::pkcs11 {

using SessionHandle = unsigned long;

// What the key and sign functions need: the module and one session the caller holds alone.
struct SessionRef {
  const Module* module = nullptr;
  SessionHandle handle = 0;
};

struct PoolOptions {
  std::size_t size = 4;
  std::chrono::milliseconds lease_timeout{2000};
};

class SessionPool {
 public:
  // Opens options.size read-write sessions (fewer if the token allows fewer) and logs in once.
  static Result<std::unique_ptr<SessionPool>> open(std::shared_ptr<const Module> module, TokenInfo token,
                                                   Pin pin, PoolOptions options);
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  ~SessionPool();

  // Move-only; gives the session back to the pool when it goes out of scope.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    SessionRef session() const;
    // Replaces the session after the token closed it or logged it out.
    Status reopen();

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, std::size_t index) : pool_(pool), index_(index) {}
    SessionPool* pool_;
    std::size_t index_;
  };

  // Waits at most options.lease_timeout for a free session.
  Result<Lease> acquire();

  // fn(SessionRef) on a leased session; if the token dropped that session, once more on a new one. A
  // token that is gone (or keeps failing) is noted, and the next acquire() re-initialises the module.
  template <class F>
  auto run(F&& fn) -> std::invoke_result_t<F&, SessionRef> {
    auto lease = acquire();
    if (!lease) return lease.error();
    auto result = fn(lease->session());
    if (!result && result.error().session_lost()) {
      if (auto ok = lease->reopen(); !ok) {
        { auto returned = std::move(*lease); }
        note_failure(ok.error());
        return ok.error();
      }
      result = fn(lease->session());
    }
    { auto returned = std::move(*lease); }  // back to the pool before a recovery waits for every session
    if (result) note_success();
    else note_failure(result.error());
    return result;
  }

  // Bumped at every re-initialisation of the module: object handles found before name nothing now (or,
  // worse, another object), so whoever caches one must find it again.
  std::uint64_t generation() const { return generation_.load(); }
  // Re-initialisations that brought the token back, and attempts that did not.
  std::uint64_t recoveries() const { return recoveries_.load(); }
  std::uint64_t failed_recoveries() const { return failed_recoveries_.load(); }
  bool token_lost() const { return lost_.load(); }
  // Why the token was last counted as lost.
  Error lost_because() const;
  // A logged-in session answers C_GetSessionInfo (if the token was lost, a recovery is tried first).
  Status probe();
  // Re-initialises the module now, with the usual draining and back-off, for an operation that only a
  // C_Finalize + C_Initialize can unstick (token_rules: a key the TPM keeps busy). `why` is reported as
  // the cause. Call it holding no lease.
  Status reinitialize(const Error& why);

  const Module& module() const { return *module_; }
  const TokenInfo& token() const { return token_; }
  std::size_t size() const { return sessions_.size(); }
  std::size_t in_use() const;

  // Private, but make_unique needs it.
  SessionPool(std::shared_ptr<const Module> module, TokenInfo token, Pin pin, PoolOptions options);

 private:
  Result<SessionHandle> open_logged_in_session();
  Status ensure_logged_in(SessionHandle session);
  void release(std::size_t index);
  void note_success();
  void note_failure(const Error& error);
  // C_Finalize, C_Initialize, find the token again (by serial) and forget every session, once no lease
  // is out. At most one thread recovers, at most every kRecoveryInterval; the others fail fast.
  Status recover();

  std::shared_ptr<const Module> module_;
  TokenInfo token_;
  Pin pin_;
  PoolOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::condition_variable all_returned_;
  bool draining_ = false;  // a recovery waits for every lease: hand out none meanwhile
  std::vector<SessionHandle> sessions_;  // 0 (CK_INVALID_HANDLE): to be opened at the next lease
  std::vector<std::size_t> free_;

  std::atomic<bool> lost_{false};
  std::atomic<int> device_errors_{0};  // in a row; a token that keeps failing is treated as gone
  std::atomic<std::uint64_t> generation_{0}, recoveries_{0}, failed_recoveries_{0};
  // Set by a recovery, cleared by the next success: until then, each recovery waits twice as long.
  std::atomic<bool> unconfirmed_{false};
  mutable std::mutex recovery_mutex_;  // guards the three below
  std::chrono::steady_clock::time_point last_recovery_{};
  std::chrono::milliseconds recovery_interval_;
  Error lost_because_;

  std::mutex login_mutex_;
  std::optional<Error> login_refused_;  // a PIN error is final: it is never tried again
};

}  // namespace hsmsignd::pkcs11
