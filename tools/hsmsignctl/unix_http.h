// A minimal HTTP/1.1 client over a Unix socket: one request, one answer, for hsmsignctl.
#pragma once

#include <filesystem>
#include <string>

namespace hsmsignd::ctl {

struct Answer {
  int status = 0;
  std::string body;
};

// Throws std::runtime_error naming the socket when it cannot connect or the answer is malformed.
Answer request(const std::filesystem::path& socket, const std::string& method, const std::string& target,
               const std::string& body = {});

}  // namespace hsmsignd::ctl
