// `hsmsignd --signer`: a signer process. It loads the PKCS#11 module, reads the PIN itself, logs in, and
// serves the front's requests on the socketpair end at fd 3 until the front closes it. Everything that
// touches the token lives here, and nothing that parses a client's HTTP.
#pragma once

#include "config/config.h"

namespace hsmsignd::signer {

inline constexpr int kChannelFd = 3;

// Returns the process's exit status: 0 when the front closed the channel, 1 when the token could not be
// opened (2 for a configuration error), 3 when the front sent a frame no stream can hold.
int run(const config::Config& config);

}  // namespace hsmsignd::signer
