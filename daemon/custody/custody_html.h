// The custody report as one self-contained HTML page for an auditor: a timeline of every key's life
// (pending, active, retiring, retired or destroyed) drawn from the token and the audit log, and the
// custody attributes and signature counts of every key on the token.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "keyring/key_label.h"

namespace hsmsignd::custody {

std::string html(const nlohmann::ordered_json& report, const std::filesystem::path& audit_log, keyring::TimePoint now);

}  // namespace hsmsignd::custody
