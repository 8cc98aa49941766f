// Brings a lost token back when no request does: while the session pool reports the token lost, a probe
// every interval lets the pool re-initialise the module, so /healthz turns ok again and the first request
// after an outage finds a logged-in session waiting.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include "session_pool.h"

namespace hsmsignd::signer {

class TokenWatch {
 public:
  // `on_recovered(outage, cause)` runs on the watch thread once a probe gets through after the token
  // was lost for `cause`.
  using OnRecovered = std::function<void(std::chrono::milliseconds outage, const pkcs11::Error& cause)>;
  TokenWatch(pkcs11::SessionPool& pool, std::chrono::milliseconds interval, OnRecovered on_recovered);
  ~TokenWatch();  // stops the thread

 private:
  void watch(std::stop_token stop);

  pkcs11::SessionPool& pool_;
  std::chrono::milliseconds interval_;
  OnRecovered on_recovered_;
  std::jthread thread_;
};

}  // namespace hsmsignd::signer
