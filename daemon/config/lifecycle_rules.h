// The rules that join tables: a keyset's timing against the JWKS cache and its clients' token
// lifetimes. Internal to the config layer.
#pragma once

#include "config/config.h"
#include "config/section.h"

namespace hsmsignd::config {

// Refuses a keyset whose keys a verifier could miss: published too late for a cached JWKS to hold
// them, or dropped while tokens they signed are still valid.
void check_lifecycle(const Section& root, const Config& config);

}  // namespace hsmsignd::config
