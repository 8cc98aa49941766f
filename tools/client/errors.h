// How the library's layers build an Error, so that every message names the socket the same way.
#pragma once

#include <string>
#include <string_view>

#include "hsmsignd/client.h"

namespace hsmsignd::client::detail {

Error make_error(Error::Kind kind, std::string message);

// "<doing> <socket>: <strerror(err)>", e.g. "cannot connect to /run/hsmsignd/sign.sock: Permission denied".
Error errno_error(Error::Kind kind, std::string_view doing, const std::string& socket, int err);

}  // namespace hsmsignd::client::detail
