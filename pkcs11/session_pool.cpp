#include "session_pool.h"

#include <algorithm>
#include <string>

#include "cryptoki.h"

namespace hsmsignd::pkcs11 {

SessionPool::SessionPool(std::shared_ptr<const Module> module, TokenInfo token, Pin pin, PoolOptions options)
    : module_(std::move(module)), token_(std::move(token)), pin_(std::move(pin)), options_(options) {}

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
  std::size_t index = 0;
  {
    std::unique_lock lock(mutex_);
    if (!available_.wait_for(lock, options_.lease_timeout, [&] { return !free_.empty(); }))
      return Error::busy("no token session free within " + std::to_string(options_.lease_timeout.count()) + " ms");
    index = free_.back();
    free_.pop_back();
  }
  Lease lease(this, index);
  if (sessions_[index] == CK_INVALID_HANDLE) {
    // An earlier reopen failed (token gone, say); try again now rather than lose the slot.
    if (auto ok = lease.reopen(); !ok) return ok.error();
  }
  return lease;
}

void SessionPool::release(std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(index);
  }
  available_.notify_one();
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
