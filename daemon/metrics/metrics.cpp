#include "metrics/metrics.h"

#include <algorithm>

namespace hsmsignd::metrics {
namespace {

constexpr std::array<const char*, kRoutes> kRouteNames{"jwt", "jws", "sign", "keys", "jwks",
                                                       "healthz", "metrics", "admin", "revoke",
                                                       "verify", "statuslist", "other"};

constexpr std::array<const char*, kStages> kStageNames{"queue", "sign", "audit"};

// One histogram's samples: `labels` is `name="value"`.
void histogram(std::string& out, const std::string& metric, const std::string& labels,
               const pkcs11::CallStatSnapshot& s) {
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < pkcs11::CallStat::kBucketsUs.size(); ++b) {
    cumulative += s.buckets[b];
    out += metric + "_bucket{" + labels + ",le=\"" +
           std::to_string(static_cast<double>(pkcs11::CallStat::kBucketsUs[b]) / 1e6) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += metric + "_bucket{" + labels + ",le=\"+Inf\"} " + std::to_string(s.calls) + "\n";
  out += metric + "_sum{" + labels + "} " + std::to_string(static_cast<double>(s.total_ns) / 1e9) + "\n";
  out += metric + "_count{" + labels + "} " + std::to_string(s.calls) + "\n";
}

// A label value as the text format wants it: a client's name is the operator's free text.
std::string label_value(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

std::size_t status_index(int status) {
  auto it = std::find(kStatuses.begin(), kStatuses.end(), status);
  return it == kStatuses.end() ? static_cast<std::size_t>(std::find(kStatuses.begin(), kStatuses.end(), 500) - kStatuses.begin())
                               : static_cast<std::size_t>(it - kStatuses.begin());
}

}  // namespace

void Metrics::verification(validation::Reason result) {
  verifications_[static_cast<std::size_t>(result)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::algorithm_confusion() { confusions_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::revocation(revocation::Kind kind) {
  revocations_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
}

Metrics::Metrics(std::vector<Keyset> keysets)
    : keysets_(std::move(keysets)), signatures_(std::make_unique<std::atomic<std::uint64_t>[]>(keysets_.size())) {}

void Metrics::request(Route route, int status) {
  requests_[static_cast<std::size_t>(route)][status_index(status)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::stage(Stage stage, std::chrono::nanoseconds took) {
  const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(took.count(), 0));
  stages_[static_cast<std::size_t>(stage)].record(ns, false);
}

void Metrics::signature(std::string_view keyset) {
  for (std::size_t i = 0; i < keysets_.size(); ++i)
    if (keysets_[i].name == keyset) signatures_[i].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  out += "# HELP hsmsignd_requests_total Requests answered, by route and HTTP status.\n"
         "# TYPE hsmsignd_requests_total counter\n";
  for (std::size_t r = 0; r < kRoutes; ++r)
    for (std::size_t s = 0; s < kStatuses.size(); ++s)
      if (auto n = requests_[r][s].load(std::memory_order_relaxed); n > 0)
        out += "hsmsignd_requests_total{route=\"" + std::string(kRouteNames[r]) + "\",status=\"" +
               std::to_string(kStatuses[s]) + "\"} " + std::to_string(n) + "\n";

  out += "# HELP hsmsignd_signatures_total Signatures made in the token, by keyset and algorithm.\n"
         "# TYPE hsmsignd_signatures_total counter\n";
  for (std::size_t i = 0; i < keysets_.size(); ++i)
    out += "hsmsignd_signatures_total{keyset=\"" + keysets_[i].name + "\",algorithm=\"" +
           std::string(name(keysets_[i].algorithm)) + "\"} " + std::to_string(signatures_[i].load()) + "\n";

  if (!g.rate_limited.empty())
    out += "# HELP hsmsignd_rate_limited_total Signing requests refused by the client's max_rate, by client.\n"
           "# TYPE hsmsignd_rate_limited_total counter\n";
  for (const auto& c : g.rate_limited)
    out += "hsmsignd_rate_limited_total{client=\"" + label_value(c.client) + "\"} " + std::to_string(c.count) + "\n";

  out += "# HELP hsmsignd_signature_faults_total Token signatures that failed verification and were withheld.\n"
         "# TYPE hsmsignd_signature_faults_total counter\n"
         "hsmsignd_signature_faults_total " + std::to_string(g.signature_faults) + "\n";

  out += "# HELP hsmsignd_token_call_seconds Latency of PKCS#11 calls, by function.\n"
         "# TYPE hsmsignd_token_call_seconds histogram\n";
  for (const auto& s : g.token_calls)
    histogram(out, "hsmsignd_token_call_seconds", "function=\"" + s.function + "\"", s);
  out += "# HELP hsmsignd_token_call_errors_total PKCS#11 calls that did not return CKR_OK, by function.\n"
         "# TYPE hsmsignd_token_call_errors_total counter\n";
  for (const auto& s : g.token_calls)
    out += "hsmsignd_token_call_errors_total{function=\"" + s.function + "\"} " + std::to_string(s.errors) + "\n";

  out += "# HELP hsmsignd_request_stage_seconds Where signing requests' time went: waiting for a signer "
         "(queue), the token's signature and its check (sign), waiting for the audit line to be durable (audit).\n"
         "# TYPE hsmsignd_request_stage_seconds histogram\n";
  for (std::size_t i = 0; i < kStages; ++i)
    histogram(out, "hsmsignd_request_stage_seconds", "stage=\"" + std::string(kStageNames[i]) + "\"",
              stages_[i].snapshot());

  out += "# HELP hsmsignd_sessions_in_use Token sessions leased right now.\n"
         "# TYPE hsmsignd_sessions_in_use gauge\n"
         "hsmsignd_sessions_in_use " + std::to_string(g.sessions_in_use) + "\n" +
         "# HELP hsmsignd_sessions Token sessions of the signer processes.\n# TYPE hsmsignd_sessions gauge\n"
         "hsmsignd_sessions " + std::to_string(g.sessions) + "\n" +
         "# HELP hsmsignd_sign_queue Signatures sent to the signer processes and not answered yet.\n# TYPE hsmsignd_sign_queue gauge\n"
         "hsmsignd_sign_queue " + std::to_string(g.sign_queue) + "\n" +
         "# HELP hsmsignd_signers Signer processes configured.\n# TYPE hsmsignd_signers gauge\n"
         "hsmsignd_signers " + std::to_string(g.signers) + "\n" +
         "# HELP hsmsignd_signers_running Signer processes logged in and serving.\n# TYPE hsmsignd_signers_running gauge\n"
         "hsmsignd_signers_running " + std::to_string(g.signers_running) + "\n" +
         "# HELP hsmsignd_signer_restarts_total Signer processes that died and were started again.\n"
         "# TYPE hsmsignd_signer_restarts_total counter\n"
         "hsmsignd_signer_restarts_total " + std::to_string(g.signer_deaths) + "\n" +
         "# HELP hsmsignd_connections Open client connections.\n# TYPE hsmsignd_connections gauge\n"
         "hsmsignd_connections " + std::to_string(g.connections) + "\n" +
         "# HELP hsmsignd_token_available Whether the last attempt to use the token worked (1) or not (0).\n"
         "# TYPE hsmsignd_token_available gauge\n"
         "hsmsignd_token_available " + (g.token_available ? "1" : "0") + "\n" +
         "# HELP hsmsignd_token_recoveries_total Re-initialisations of the PKCS#11 module, by outcome.\n"
         "# TYPE hsmsignd_token_recoveries_total counter\n"
         "hsmsignd_token_recoveries_total{outcome=\"recovered\"} " + std::to_string(g.token_recoveries) + "\n" +
         "hsmsignd_token_recoveries_total{outcome=\"failed\"} " + std::to_string(g.token_failed_recoveries) + "\n";

  out += "# HELP hsmsignd_verifications_total Tokens verified, by result: valid, or the check that failed.\n"
         "# TYPE hsmsignd_verifications_total counter\n";
  for (std::size_t r = 0; r < validation::kReasons; ++r)
    out += "hsmsignd_verifications_total{result=\"" + std::string(name(static_cast<validation::Reason>(r))) + "\"} " +
           std::to_string(verifications_[r].load(std::memory_order_relaxed)) + "\n";
  out += "# HELP hsmsignd_algorithm_confusion_total Tokens presented with an alg that is not their key's (none, HS*, "
         "another algorithm).\n# TYPE hsmsignd_algorithm_confusion_total counter\n"
         "hsmsignd_algorithm_confusion_total " + std::to_string(confusions_.load(std::memory_order_relaxed)) + "\n";
  out += "# HELP hsmsignd_revocations_total Revocations this daemon stored, by kind.\n"
         "# TYPE hsmsignd_revocations_total counter\n";
  for (std::size_t k = 0; k < revocations_.size(); ++k)
    out += "hsmsignd_revocations_total{kind=\"" + std::string(kind_name(static_cast<revocation::Kind>(k))) + "\"} " +
           std::to_string(revocations_[k].load(std::memory_order_relaxed)) + "\n";
  out += "# HELP hsmsignd_revocation_entries Revocations in force, held in memory.\n"
         "# TYPE hsmsignd_revocation_entries gauge\n"
         "hsmsignd_revocation_entries " + std::to_string(g.revocation_entries) + "\n" +
         "# HELP hsmsignd_revocation_store_up Whether the revocation store can be reached (1) or not (0).\n"
         "# TYPE hsmsignd_revocation_store_up gauge\n"
         "hsmsignd_revocation_store_up " + (g.revocation_store_up ? "1" : "0") + "\n" +
         "# HELP hsmsignd_revocation_store_outages_total Times the revocation store became unreachable.\n"
         "# TYPE hsmsignd_revocation_store_outages_total counter\n"
         "hsmsignd_revocation_store_outages_total " + std::to_string(g.revocation_store_outages) + "\n";
  return out;
}

}  // namespace hsmsignd::metrics
