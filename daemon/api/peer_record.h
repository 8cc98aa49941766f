// The audit record of something a peer asked for: who asked (the peer's credentials, and the [[client]]
// they matched) comes first, the caller adds the rest.
#pragma once

#include <string>

#include "audit/audit_log.h"
#include "config/config.h"
#include "policy/policy.h"

namespace hsmsignd::api {

audit::Record peer_record(std::string event, const policy::Peer& peer, const config::ClientConfig* client = nullptr,
                          bool retry_until_written = false);

}  // namespace hsmsignd::api
