// The raw token baseline: C_SignInit + C_Sign straight on the module, one session per thread, nothing
// else. Every daemon figure in bench/ is reported as a ratio to this, measured in the same run.
//
//   hsmsignd-bench-raw --module SO --token LABEL --pin-file FILE [--seconds 2] [--threads 1,2,4]
//                      [--algorithms ES256,ES384,RS256,PS256,EdDSA]
//
// It prints one row per algorithm and thread count. Cryptoki is called directly here on purpose: the
// point is to measure the token without hsmsignd's own layer in between.
#include <p11-kit/pkcs11.h>
#include <openssl/rand.h>

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
};

// Each thread opens its own session (logged in through the pool's login) and signs until time is up.
Row measure(CK_FUNCTION_LIST* fl, CK_SLOT_ID slot, CK_OBJECT_HANDLE key, Algorithm alg, int threads, double seconds) {
  // What the token gets from the daemon: a digest for ECDSA, a JWT signing input otherwise.
  std::vector<CK_BYTE> input(ec_field_size(alg) != 0 ? digest_size(alg) : 180);
  RAND_bytes(input.data(), static_cast<int>(input.size()));
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> total{0}, failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      CK_SESSION_HANDLE s = 0;
      if (fl->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s) != CKR_OK) {
        ++failures;
        return;
      }
      CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
      CK_MECHANISM mech = mechanism_for(alg, &pss);
      std::vector<CK_BYTE> sig(1024);
      long n = 0;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        CK_ULONG len = sig.size();
        if (fl->C_SignInit(s, &mech, key) != CKR_OK || fl->C_Sign(s, input.data(), input.size(), sig.data(), &len) != CKR_OK) {
          ++failures;
          break;
        }
        ++n;
      }
      total += n;
      fl->C_CloseSession(s);
    });
  }
  go.store(true, std::memory_order_release);
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (failures > 0) throw std::runtime_error("C_Sign failed during the run");
  const double rate = static_cast<double>(total.load()) / elapsed;
  return {rate, rate > 0 ? 1e6 * threads / rate : 0};
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
  std::printf("%-8s %8s %14s %12s\n", "alg", "threads", "signatures/s", "us/signature");
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
      std::printf("%-8s %8d %14.0f %12.1f\n", std::string(name(alg)).c_str(), threads, row.rate, row.mean_us);
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
