#include "session_pool.h"

#include <algorithm>
#include <string>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {

namespace {
// A token that is gone is tried again after 250 ms, then after twice as long each time (up to 2 s)
// until something works: a device that keeps failing is not re-initialised in a tight loop.
constexpr std::chrono::milliseconds kFirstRecoveryInterval{250};
constexpr std::chrono::milliseconds kLongestRecoveryInterval{2000};
}  // namespace

SessionPool::SessionPool(std::shared_ptr<const Module> module, TokenInfo token, Pin pin, PoolOptions options)
    : module_(std::move(module)),
      token_(std::move(token)),
      pin_(std::move(pin)),
      options_(options),
      recovery_interval_(kFirstRecoveryInterval) {}

Result<std::unique_ptr<SessionPool>> SessionPool::open(std::shared_ptr<const Module> module, TokenInfo token,
                                                       Pin pin, PoolOptions options) {
  std::size_t size = std::max<std::size_t>(options.size, 1);
  if (token.max_sessions != 0) size = std::min<std::size_t>(size, token.max_sessions);
  auto pool = std::make_unique<SessionPool>(std::move(module), std::move(token), std::move(pin), options);
  for (std::size_t i = 0; i < size; ++i) {
    auto session = pool->open_logged_in_session();
    if (!session) return session.error();
    pool->sessions_.push_back(*session);
    pool->free_.push_back(i);
  }
  return pool;
}

SessionPool::~SessionPool() {
  // Closing the last session also logs the application out of the token.
  for (SessionHandle s : sessions_)
    if (s != CK_INVALID_HANDLE) (void)P11_CALL(*module_, C_CloseSession, s);
}

Result<SessionHandle> SessionPool::open_logged_in_session() {
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  if (auto ok = P11_CALL(*module_, C_OpenSession, token_.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                         nullptr, &session);
      !ok)
    return ok.error();
  if (auto ok = ensure_logged_in(session); !ok) {
    (void)P11_CALL(*module_, C_CloseSession, session);
    return ok.error();
  }
  return session;
}

Status SessionPool::ensure_logged_in(SessionHandle session) {
  // Login is per application, not per session: a new session is logged in if any other one is.
  CK_SESSION_INFO info{};
  if (auto ok = P11_CALL(*module_, C_GetSessionInfo, session, &info); !ok) return ok.error();
  if (info.state == CKS_RW_USER_FUNCTIONS || info.state == CKS_RO_USER_FUNCTIONS || !token_.login_required)
    return {};

  std::lock_guard lock(login_mutex_);
  if (login_refused_) return *login_refused_;
  auto pin = pin_.bytes();
  auto ok = P11_CALL(*module_, C_Login, session, CKU_USER, const_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
  if (ok || ok.error().rv == CKR_USER_ALREADY_LOGGED_IN) return {};
  Error error = ok.error();
  error.detail = "login to token \"" + token_.label + "\"";
  if (error.pin_final()) login_refused_ = error;
  return error;
}

Result<SessionPool::Lease> SessionPool::acquire() {
  if (lost_.load()) {
    if (auto ok = recover(); !ok) return ok.error();
  }
  std::size_t index = 0;
  {
    std::unique_lock lock(mutex_);
    if (!available_.wait_for(lock, options_.lease_timeout, [&] { return !free_.empty() && !draining_; }))
      return Error::busy("no token session free within " + std::to_string(options_.lease_timeout.count()) + " ms");
    index = free_.back();
    free_.pop_back();
  }
  Lease lease(this, index);
  if (sessions_[index] == CK_INVALID_HANDLE) {
    // Not opened since the last recovery, or an earlier reopen failed: open it now.
    if (auto ok = lease.reopen(); !ok) {
      { auto returned = std::move(lease); }
      note_failure(ok.error());
      return ok.error();
    }
  }
  return lease;
}

void SessionPool::release(std::size_t index) {
  bool all_back = false;
  {
    std::lock_guard lock(mutex_);
    free_.push_back(index);
    all_back = free_.size() == sessions_.size();
  }
  available_.notify_one();
  if (all_back) all_returned_.notify_all();
}

Status SessionPool::probe() {
  auto lease = acquire();
  if (!lease) return lease.error();
  CK_SESSION_INFO info{};
  auto ok = P11_CALL(*module_, C_GetSessionInfo, lease->session().handle, &info);
  { auto returned = std::move(*lease); }
  // Not a success for the back-off: a token that answers this may still fail every signature.
  if (!ok) note_failure(ok.error());
  return ok;
}

void SessionPool::note_success() {
  if (device_errors_.load(std::memory_order_relaxed) != 0) device_errors_.store(0, std::memory_order_relaxed);
  if (unconfirmed_.load(std::memory_order_relaxed) && unconfirmed_.exchange(false)) {
    std::lock_guard lock(recovery_mutex_);
    recovery_interval_ = kFirstRecoveryInterval;
  }
}

Error SessionPool::lost_because() const {
  std::lock_guard lock(recovery_mutex_);
  return lost_because_;
}

void SessionPool::note_failure(const Error& error) {
  constexpr int kDeviceErrorsBeforeRecovery = 3;
  bool gone = error.token_gone();
  if (error.device_fault()) gone = device_errors_.fetch_add(1) + 1 >= kDeviceErrorsBeforeRecovery;
  if (!gone || lost_.load()) return;
  std::lock_guard lock(recovery_mutex_);
  lost_because_ = error;
  lost_.store(true);
}

Status SessionPool::reinitialize(const Error& why) {
  {
    std::lock_guard lock(recovery_mutex_);
    if (!lost_.load()) lost_because_ = why;
    lost_.store(true);
  }
  return recover();
}

Status SessionPool::recover() {
  // While one thread recovers, or until the next attempt is due, callers get the reason at once: a
  // token that is gone must turn into a quick 503, not a queue of requests waiting on it.
  std::unique_lock recovering(recovery_mutex_, std::try_to_lock);
  if (!recovering.owns_lock()) return Error::busy("the token is being re-initialised");
  if (!lost_.load()) return {};
  const auto now = std::chrono::steady_clock::now();
  if (now - last_recovery_ < recovery_interval_) {
    Error pending = lost_because_;
    pending.detail = "token lost; re-initialising the module again within " +
                     std::to_string(recovery_interval_.count()) + " ms";
    return pending;
  }
  last_recovery_ = now;
  recovery_interval_ = std::min(recovery_interval_ * 2, kLongestRecoveryInterval);

  {
    // C_Finalize must not run while another thread is inside a call: wait for every lease. They fail
    // fast against a token that is gone.
    std::unique_lock lock(mutex_);
    draining_ = true;
    const bool drained = all_returned_.wait_for(lock, options_.lease_timeout,
                                                [&] { return free_.size() == sessions_.size(); });
    if (!drained) {
      draining_ = false;
      available_.notify_all();
      return Error::busy("token sessions still in use; re-initialisation postponed");
    }
  }
  auto reopened = [&]() -> Status {
    if (auto ok = module_->reinitialize(); !ok) return ok.error();
    for (SessionHandle& s : sessions_) s = CK_INVALID_HANDLE;  // C_Finalize closed them all
    generation_.fetch_add(1);
    // Slot numbers may change when a device comes back: find the same token (by serial) again.
    auto found = find_token(*module_, token_.serial.empty() ? TokenSelector{token_.label, {}}
                                                            : TokenSelector{{}, token_.serial});
    if (!found) return found.error();
    if (found->label != token_.label) return Error::not_found("the token with serial " + token_.serial +
                                                             " now has another label");
    token_.slot = found->slot;
    // One logged-in session proves the token is back; the rest are opened as they are leased.
    auto session = open_logged_in_session();
    if (!session) return session.error();
    sessions_[free_.back()] = *session;
    return {};
  }();
  {
    std::lock_guard lock(mutex_);
    draining_ = false;
  }
  available_.notify_all();
  if (!reopened) {
    failed_recoveries_.fetch_add(1);
    return reopened.error();
  }
  device_errors_.store(0);
  recoveries_.fetch_add(1);
  unconfirmed_.store(true);
  lost_.store(false);
  return {};
}

std::size_t SessionPool::in_use() const {
  std::lock_guard lock(mutex_);
  return sessions_.size() - free_.size();
}

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), index_(other.index_) {}

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_) pool_->release(index_);
    pool_ = std::exchange(other.pool_, nullptr);
    index_ = other.index_;
  }
  return *this;
}

SessionPool::Lease::~Lease() {
  if (pool_) pool_->release(index_);
}

SessionRef SessionPool::Lease::session() const { return {pool_->module_.get(), pool_->sessions_[index_]}; }

Status SessionPool::Lease::reopen() {
  // Only this lease touches sessions_[index_] while it is held, so no lock is needed for the slot.
  SessionHandle& slot = pool_->sessions_[index_];
  if (slot != CK_INVALID_HANDLE) (void)P11_CALL(*pool_->module_, C_CloseSession, slot);
  slot = CK_INVALID_HANDLE;
  auto session = pool_->open_logged_in_session();
  if (!session) return session.error();
  slot = *session;
  return {};
}

}  // namespace hsmsignd::pkcs11
