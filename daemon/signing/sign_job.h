// A signature a request waits for: handed to the signer processes, answered on a channel's thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "signing/checked_signer.h"

namespace hsmsignd::signing {

// Where a job's time went: waiting (in the front, on the channel, in the signer's queue), then the
// token's signature.
struct SignTimes {
  std::chrono::nanoseconds queued{}, signing{};
};

struct SignJob {
  std::shared_ptr<CheckedSigner> signer;
  std::string input;  // the JWS signing input, or the digest when `digest` is set
  bool digest = false;
  // How the digest was made and is padded (with `digest`); the algorithm's own unless /v1/sign asked for
  // another on a tls keyset. Unset: the algorithm's own.
  std::optional<DigestScheme> scheme;
  // Runs on a channel's reader thread (keep it short: post), and gets `input` back so nothing is copied.
  std::function<void(pkcs11::Result<Bytes>, std::string input, SignTimes times)> done;
};

}  // namespace hsmsignd::signing
