// The audit-chain verifier `hsmsignctl audit verify` runs (audit::verify_chain), fed arbitrary file
// content. If the first line is a JSON object with "kty", it is read as the audit key file
// (jose::from_jwk, as hsmsignctl does) and the rest is the log; otherwise the log is verified against a
// fixed test audit key whose private half the harness holds (derived from a public constant: it
// protects nothing).
//
// Each input is checked three ways:
//  1. as given: the report is consistent (an error names FILE:LINE: of a line that exists; an accepted
//     log really has continuous seq, every prev the SHA-256 of the line before, and every checkpoint
//     signature valid, recomputed here with separate code);
//  2. repaired: when every line is a JSON object, the harness renumbers seq, recomputes every prev and
//     re-signs every checkpoint with the test key; that log must be accepted, with the right counts;
//  3. tampered: one byte added to a line of the repaired log other than the last must be caught, and
//     the error must name the line after it (whose prev no longer matches).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/chain.h"
#include "audit/verify_chain.h"
#include "crypto/digest.h"
#include "crypto/evp_key.h"
#include "crypto/verify.h"
#include "fuzz_support.h"
#include "jose/base64url.h"
#include "jose/jwk.h"
#include "software_keys.h"

namespace {

using namespace hsmsignd;

// The test audit key: private scalar = SHA-256("hsmsignd fuzz audit key"). make_audit_seeds.py derives
// the same key, so the seed logs carry checkpoints that verify as they are.
struct TestKey {
  crypto::EvpPkeyPtr pkey;
  PublicKey pub;
  std::string kid;
};

const TestKey& test_key() {
  static const TestKey key = [] {
    const Bytes scalar = crypto::sha256(as_bytes("hsmsignd fuzz audit key"));
    BIGNUM* priv = BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), nullptr);
    EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT* point = EC_POINT_new(group);
    unsigned char pub[65];
    if (!priv || !group || !point || EC_POINT_mul(group, point, priv, nullptr, nullptr, nullptr) != 1 ||
        EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof pub, nullptr) != sizeof pub)
      std::abort();
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub);
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    EVP_PKEY* pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
      std::abort();
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(point);
    EC_GROUP_free(group);
    BN_free(priv);
    TestKey k{crypto::EvpPkeyPtr(pkey), crypto::from_evp(pkey, Algorithm::ES256).value(), {}};
    k.kid = jose::thumbprint(k.pub);
    return k;
  }();
  return key;
}

const std::filesystem::path& scratch_file() {
  static const std::filesystem::path file = [] {
    std::string dir = "/dev/shm/hsmsignd-fuzz-audit-XXXXXX";
    if (::access("/dev/shm", W_OK) != 0) dir = std::filesystem::temp_directory_path().string() + "/hsmsignd-fuzz-audit-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) std::abort();
    static const std::string remove_me = dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(remove_me, ignored);
    });
    return std::filesystem::path(dir) / "audit.jsonl";
  }();
  return file;
}

// std::getline's view of a file, which is what verify_chain reads.
std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.emplace_back(text.substr(start));
      break;
    }
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Lowercase hex SHA-256 through EVP directly, not through audit::hex_sha256.
std::string sha256_hex(std::string_view s) {
  unsigned char md[32];
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr) != 1 || n != 32) std::abort();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : md) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

audit::ChainReport verify_text(std::string_view log, const PublicKey& key, const std::string& kid) {
  const auto& file = scratch_file();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(log.data(), static_cast<std::streamsize>(log.size()));
    FUZZ_CHECK(out.good(), "cannot write " + file.string());
  }
  return audit::verify_chain({file}, key, kid);
}

void check_report(const audit::ChainReport& r, const std::vector<std::string>& lines, const PublicKey& key,
                  const std::string& kid) {
  const std::string file = scratch_file().string();
  if (!r.ok) {
    FUZZ_CHECK(!r.error.empty(), "a refused log without an error");
    FUZZ_CHECK(r.error.starts_with(file + ":"), "the error does not name the file: " + r.error);
    const std::string rest = r.error.substr(file.size() + 1);
    const std::size_t colon = rest.find(':');
    FUZZ_CHECK(colon != std::string::npos && colon > 0, "the error does not name a line: " + r.error);
    const std::string number = rest.substr(0, colon);
    FUZZ_CHECK(number.find_first_not_of("0123456789") == std::string::npos && number.size() < 10, "bad line number: " + r.error);
    const std::size_t line = std::stoul(number);
    FUZZ_CHECK(line >= 1 && line <= lines.size(), "the error names a line that does not exist: " + r.error);
    return;
  }
  FUZZ_CHECK(r.error.empty(), "an accepted log with an error: " + r.error);
  FUZZ_CHECK(r.lines == lines.size(), "lines counted " + std::to_string(r.lines) + " of " + std::to_string(lines.size()));
  FUZZ_CHECK(r.checkpoints <= r.lines && r.uncovered <= r.lines, "counts beyond the line count");
  std::uint64_t signatures = 0;
  for (const auto& [k, n] : r.signatures_by_kid) signatures += n;
  FUZZ_CHECK(signatures <= r.lines, "more signatures than lines");

  // No false acceptance: the chain holds, recomputed here.
  std::uint64_t checkpoints = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i], nullptr, false);
    FUZZ_CHECK(j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned() && j.contains("prev") &&
                   j["prev"].is_string() && j.contains("time") && j["time"].is_string() && j.contains("event") &&
                   j["event"].is_string(),
               "accepted a line that is not an audit record: " + lines[i]);
    const std::uint64_t seq = j["seq"].get<std::uint64_t>();
    if (i == 0) {
      FUZZ_CHECK(seq == r.first_seq, "first_seq is not the first line's seq");
      if (seq == 1) FUZZ_CHECK(j["prev"] == audit::kGenesis, "accepted seq 1 with a prev other than the genesis");
    } else {
      const auto before = nlohmann::json::parse(lines[i - 1], nullptr, false);
      FUZZ_CHECK(seq == before["seq"].get<std::uint64_t>() + 1, "accepted a seq gap at line " + std::to_string(i + 1));
      FUZZ_CHECK(j["prev"] == sha256_hex(lines[i - 1]), "accepted a wrong prev at line " + std::to_string(i + 1));
    }
    if (j["event"] == "checkpoint") {
      ++checkpoints;
      FUZZ_CHECK(j.contains("kid") && j["kid"] == kid && j.contains("head") && j["head"] == j["prev"],
                 "accepted a checkpoint of another key or head");
      FUZZ_CHECK(j.contains("signature") && j["signature"].is_string(), "accepted a checkpoint without a signature");
      const auto signature = jose::base64url_decode(j["signature"].get<std::string>());
      const std::string message = audit::checkpoint_message(seq, j["time"].get<std::string>(), j["prev"].get<std::string>());
      FUZZ_CHECK(signature && crypto::verify(key, as_bytes(message), *signature), "accepted a checkpoint whose signature fails");
    }
  }
  FUZZ_CHECK(checkpoints == r.checkpoints, "checkpoints miscounted");
}

// Makes every line a correctly chained record, re-signing checkpoints; nullopt when some line is not a
// JSON object (there is nothing to repair then).
struct Repaired {
  std::vector<std::string> lines;
  std::uint64_t checkpoints = 0;
  std::uint64_t uncovered = 0;
  std::map<std::string, std::uint64_t> by_kid, by_client;
};

std::optional<Repaired> repair(const std::vector<std::string>& lines) {
  if (lines.empty()) return std::nullopt;
  const TestKey& key = test_key();
  Repaired out;
  std::string prev = audit::kGenesis;
  std::uint64_t first_seq = 1;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto j = nlohmann::ordered_json::parse(lines[i], nullptr, false);
    if (!j.is_object()) return std::nullopt;
    if (i == 0) {
      // Keep a first file that continues an earlier one (seq > 1, any well-formed prev).
      if (j.contains("seq") && j["seq"].is_number_unsigned() && j["seq"].get<std::uint64_t>() > 1 &&
          j["seq"].get<std::uint64_t>() < (std::uint64_t{1} << 62))
        first_seq = j["seq"].get<std::uint64_t>();
      if (first_seq > 1 && j.contains("prev") && j["prev"].is_string()) {
        const std::string p = j["prev"].get<std::string>();
        if (p.size() == 64 && p.find_first_not_of("0123456789abcdef") == std::string::npos) prev = p;
      }
    }
    const std::uint64_t seq = first_seq + i;
    j["seq"] = seq;
    if (!j.contains("time") || !j["time"].is_string()) j["time"] = "2024-05-01T12:00:00.000000Z";
    if (!j.contains("event") || !j["event"].is_string()) j["event"] = "issue";
    j["prev"] = prev;
    const std::string event = j["event"].get<std::string>();
    if (event == "checkpoint") {
      j["kid"] = key.kid;
      j["head"] = prev;
      const std::string message = audit::checkpoint_message(seq, j["time"].get<std::string>(), prev);
      j["signature"] = jose::base64url_encode(test::sign(key.pkey.get(), Algorithm::ES256, as_bytes(message)));
      ++out.checkpoints;
      out.uncovered = 0;
    } else {
      ++out.uncovered;
      if (event == "issue" || event == "sign") {
        if (j.contains("kid") && j["kid"].is_string()) ++out.by_kid[j["kid"].get<std::string>()];
        if (j.contains("client") && j["client"].is_string()) ++out.by_client[j["client"].get<std::string>()];
      }
    }
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    prev = sha256_hex(line);
    out.lines.push_back(std::move(line));
  }
  return out;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text.append(l).append("\n");
  return text;
}

// The audit key file as hsmsignctl reads it: the key, and the kid that must be its thumbprint.
std::optional<std::pair<PublicKey, std::string>> read_key_file(const nlohmann::json& jwk) {
  auto key = jose::from_jwk(jwk, Algorithm::ES256);
  if (!key) {
    FUZZ_CHECK(!key.error().what().empty(), "from_jwk refused a key without saying why");
    return std::nullopt;
  }
  FUZZ_CHECK(key->algorithm == Algorithm::ES256 && key->point.size() == 65, "from_jwk returned a malformed ES256 key");
  FUZZ_CHECK(crypto::to_evp(*key).has_value(), "from_jwk returned a key OpenSSL refuses");
  auto again = jose::from_jwk(jose::to_jwk(*key), Algorithm::ES256);
  FUZZ_CHECK(again && *again == *key, "to_jwk/from_jwk round trip changed the key");
  const std::string kid = jose::thumbprint(*key);
  FUZZ_CHECK(kid.size() == 43, "a thumbprint that is not 32 bytes: " + kid);
  return std::make_pair(std::move(*key), kid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    std::string_view log = fuzz::as_text(data, size);
    PublicKey key = test_key().pub;
    std::string kid = test_key().kid;
    if (log.starts_with("{")) {
      const std::size_t newline = log.find('\n');
      const std::string_view first = log.substr(0, newline);
      const auto jwk = nlohmann::json::parse(first, nullptr, false);
      if (jwk.is_object() && jwk.contains("kty")) {
        log = newline == std::string_view::npos ? std::string_view() : log.substr(newline + 1);
        auto read = read_key_file(jwk);
        if (!read) return 0;  // hsmsignctl stops here
        key = std::move(read->first);
        kid = std::move(read->second);
      }
    }

    // 1. As given.
    const std::vector<std::string> lines = split_lines(log);
    check_report(verify_text(log, key, kid), lines, key, kid);

    // 2. Repaired: must verify against the test key.
    const auto repaired = repair(lines);
    if (!repaired) return 0;
    const std::string text = join(repaired->lines);
    const auto& tk = test_key();
    const auto r = verify_text(text, tk.pub, tk.kid);
    FUZZ_CHECK(r.ok, "a correctly chained and signed log was refused: " + r.error + "\n  log:\n" + text);
    check_report(r, repaired->lines, tk.pub, tk.kid);
    FUZZ_CHECK(r.checkpoints == repaired->checkpoints && r.uncovered == repaired->uncovered,
               "checkpoint or uncovered count wrong");
    FUZZ_CHECK(r.signatures_by_kid == repaired->by_kid && r.signatures_by_client == repaired->by_client,
               "signature counts per key or client wrong");

    // 3. Tampered: a line before the last one changed by one byte (a space, still valid JSON).
    if (repaired->lines.size() >= 2) {
      std::size_t victim = 0;
      for (std::size_t i = 0; i < size; ++i) victim = victim * 31 + data[i];
      victim %= repaired->lines.size() - 1;
      auto tampered = repaired->lines;
      tampered[victim] += ' ';
      const auto t = verify_text(join(tampered), tk.pub, tk.kid);
      FUZZ_CHECK(!t.ok, "a changed line went unnoticed (line " + std::to_string(victim + 1) + ")");
      const std::string expected = scratch_file().string() + ":" + std::to_string(victim + 1) + ": ";
      FUZZ_CHECK(t.error.starts_with(expected), "the tamper is reported at the wrong line: " + t.error +
                                                    " (changed line " + std::to_string(victim + 1) + ")");
    }
  } catch (const std::exception& e) {
    fuzz::fail(__FILE__, __LINE__, "no exception", std::string("exception escaped: ") + e.what());
  } catch (...) {
    fuzz::fail(__FILE__, __LINE__, "no exception", "a non-standard exception escaped");
  }
  return 0;
}
