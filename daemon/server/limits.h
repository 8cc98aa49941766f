// Everything a connection may consume is bounded before a byte of it is parsed.
#pragma once

#include <chrono>
#include <cstddef>

namespace hsmsignd::server {

struct Limits {
  std::size_t max_body = 65536;      // larger bodies get 413
  std::size_t max_header = 8192;     // larger headers get 413 too
  std::chrono::milliseconds request_timeout{10'000};  // a started request must be complete by then: 408
  std::chrono::milliseconds idle_timeout{60'000};     // a keep-alive connection waiting longer is closed
  // Per listener. At the cap the oldest idle connection is closed for a new one; with none idle, the
  // new one is answered 429 and closed.
  std::size_t max_connections = 4096;
};

}  // namespace hsmsignd::server
