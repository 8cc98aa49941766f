// The error every fallible function of hsmsignd::jose returns.
#pragma once

#include <string>

namespace hsmsignd::jose {

struct JoseError {
  std::string message;

  const std::string& what() const { return message; }
};

}  // namespace hsmsignd::jose
