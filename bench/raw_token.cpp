// The raw token baseline: C_SignInit + C_Sign straight on the module, one session per thread, nothing
// else. Every daemon figure in bench/ is reported as a ratio to this, measured in the same run.
//
//   hsmsignd-bench-raw --module SO --token LABEL --pin-file FILE [--seconds 2] [--threads 1,2,4]
//                      [--algorithms ES256,ES384,RS256,PS256,EdDSA]
//
// It prints one row per algorithm and thread count: signatures per second, the mean time per signature
// per thread, p50/p99/p999 of one C_SignInit + C_Sign call (microseconds), and the CPU time this process
// used per signature (what the token costs the host; run.sh sets the daemon's CPU per token beside it).
// Cryptoki is called directly here on purpose: the point is to measure the token without hsmsignd's own
// layer in between.
#include <p11-kit/pkcs11.h>
#include <openssl/rand.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "keys.h"
#include "module.h"
#include "pin.h"
#include "session_pool.h"
#include "token.h"

namespace {

using namespace hsmsignd;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token = "hsmsignd";
  std::string pin_file;
  double seconds = 2.0;
  std::vector<int> threads{1, 2, 4};
  std::vector<Algorithm> algorithms{Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256,
                                    Algorithm::EdDSA};
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--module") o.module = v;
    else if (k == "--token") o.token = v;
    else if (k == "--pin-file") o.pin_file = v;
    else if (k == "--seconds") o.seconds = std::stod(v);
    else if (k == "--threads") {
      o.threads.clear();
      for (const auto& t : split(v)) o.threads.push_back(std::stoi(t));
    } else if (k == "--algorithms") {
      o.algorithms.clear();
      for (const auto& a : split(v)) {
        auto alg = parse_algorithm(a);
        if (!alg) throw std::runtime_error("unknown algorithm " + a);
        o.algorithms.push_back(*alg);
      }
    } else {
      throw std::runtime_error("unknown option " + k);
    }
  }
  if (o.pin_file.empty()) throw std::runtime_error("--pin-file is required");
  return o;
}

CK_MECHANISM mechanism_for(Algorithm alg, CK_RSA_PKCS_PSS_PARAMS* pss) {
  switch (alg) {
    case Algorithm::ES256:
    case Algorithm::ES384: return {CKM_ECDSA, nullptr, 0};
    case Algorithm::RS256: return {CKM_SHA256_RSA_PKCS, nullptr, 0};
    case Algorithm::PS256: return {CKM_SHA256_RSA_PKCS_PSS, pss, sizeof(*pss)};
    case Algorithm::EdDSA: return {CKM_EDDSA, nullptr, 0};
  }
  return {};
}

struct Row {
  double rate;
  double mean_us;
  double p50_us, p99_us, p999_us;  // of one C_SignInit + C_Sign, over every call of every thread
  double cpu_us;                   // this process's CPU time per signature: what the token costs the host
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// What one thread shares with the others: the start and stop flags and the key to sign with.
struct Run {
  CK_FUNCTION_LIST* fl;
  CK_SLOT_ID slot;
  CK_OBJECT_HANDLE key;
  Algorithm alg;
  std::vector<CK_BYTE>& input;  // Cryptoki's C_Sign takes a non-const pointer
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> failures{0};
};

// An open session that closes itself.
class Session {
 public:
  Session(CK_FUNCTION_LIST* fl, CK_SLOT_ID slot) : fl_(fl) {
    if (fl_->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &handle_) != CKR_OK) handle_ = CK_INVALID_HANDLE;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (open()) fl_->C_CloseSession(handle_);
  }
  bool open() const { return handle_ != CK_INVALID_HANDLE; }
  CK_SESSION_HANDLE get() const { return handle_; }

 private:
  CK_FUNCTION_LIST* fl_;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

// One thread: its own session (logged in through the pool's login), signing until told to stop, the
// time of every call in `latencies` (microseconds).
void sign_until_stopped(Run& run, std::vector<double>& latencies) {
  Session s(run.fl, run.slot);
  if (!s.open()) {
    ++run.failures;
    return;
  }
  CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM mech = mechanism_for(run.alg, &pss);
  std::vector<CK_BYTE> sig(1024);
  while (!run.go.load(std::memory_order_acquire)) std::this_thread::yield();
  while (!run.stop.load(std::memory_order_relaxed)) {
    CK_ULONG len = sig.size();
    const auto before = Clock::now();
    if (run.fl->C_SignInit(s.get(), &mech, run.key) != CKR_OK ||
        run.fl->C_Sign(s.get(), run.input.data(), run.input.size(), sig.data(), &len) != CKR_OK) {
      ++run.failures;
      return;
    }
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
}

Row measure(CK_FUNCTION_LIST* fl, CK_SLOT_ID slot, CK_OBJECT_HANDLE key, Algorithm alg, int threads, double seconds) {
  // What the token gets from the daemon: a digest for ECDSA, a JWT signing input otherwise.
  std::vector<CK_BYTE> input(ec_field_size(alg) != 0 ? digest_size(alg) : 180);
  RAND_bytes(input.data(), static_cast<int>(input.size()));
  Run run{fl, slot, key, alg, input};
  std::vector<std::vector<double>> per_thread(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (auto& latencies : per_thread) {
    latencies.reserve(1 << 18);
    workers.emplace_back([&run, &latencies] { sign_until_stopped(run, latencies); });
  }
  const double cpu_before = cpu_seconds();
  run.go.store(true, std::memory_order_release);
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  run.stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_before;
  if (run.failures > 0) throw std::runtime_error("C_Sign failed during the run");
  std::vector<double> all;
  for (const auto& latencies : per_thread) all.insert(all.end(), latencies.begin(), latencies.end());
  const double rate = static_cast<double>(all.size()) / elapsed;
  const double signatures = static_cast<double>(std::max<std::size_t>(all.size(), 1));
  return {rate, rate > 0 ? 1e6 * threads / rate : 0, percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999),
          1e6 * cpu / signatures};
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  auto module = pkcs11::Module::load(opt.module).value();
  auto token = pkcs11::find_token(*module, {opt.token, {}}).value();
  auto pool = pkcs11::SessionPool::open(module, token, pkcs11::Pin::read_file(opt.pin_file).value(), {1}).value();
  auto* fl = static_cast<CK_FUNCTION_LIST*>(module->raw_function_list());

  std::printf("# raw token baseline: C_SignInit + C_Sign, one session per thread, %.1f s per row\n", opt.seconds);
  std::printf("# token: %s (%s)\n", token.model.c_str(), token.manufacturer.c_str());
  std::printf("%-8s %8s %14s %12s %9s %9s %9s %11s\n", "alg", "threads", "signatures/s", "us/signature", "p50 us",
              "p99 us", "p999 us", "cpu us/sig");
  for (Algorithm alg : opt.algorithms) {
    Bytes id(16);
    RAND_bytes(id.data(), static_cast<int>(id.size()));
    CK_OBJECT_HANDLE key = 0;
    {
      auto lease = pool->acquire().value();
      key = pkcs11::generate_key_pair(lease.session(), {alg, 2048, id, "bench-raw"}).value().private_key;
    }
    for (int threads : opt.threads) {
      const Row row = measure(fl, token.slot, key, alg, threads, opt.seconds);
      std::printf("%-8s %8d %14.0f %12.1f %9.0f %9.0f %9.0f %11.1f\n", std::string(name(alg)).c_str(), threads, row.rate,
                  row.mean_us, row.p50_us, row.p99_us, row.p999_us, row.cpu_us);
      std::fflush(stdout);
    }
    auto lease = pool->acquire().value();
    (void)pkcs11::destroy_key(lease.session(), id);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hsmsignd-bench-raw: %s\n", e.what());
  return 1;
}
