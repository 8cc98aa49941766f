// The raw token baseline: C_SignInit + C_Sign straight on the module, one session per thread, nothing
// else. Every daemon figure in bench/ is reported as a ratio to this, measured in the same run.
//
//   hsmsignd-bench-raw --module SO --token LABEL --pin-file FILE [--seconds 2] [--threads 1,2,4]
//                      [--processes 1,2] [--algorithms ES256,ES384,RS256,PS256,EdDSA] [--init-args STRING]
//
// --init-args STRING: CK_C_INITIALIZE_ARGS.pReserved at C_Initialize, as the daemon's [token] init_args
// (NSS softoken reads its database folder from it); left out: NULL.
//
// It prints one row per algorithm and thread count: signatures per second, the mean time per signature
// per thread, p50/p99/p999 of one C_SignInit + C_Sign call (microseconds), and the CPU time this process
// used per signature (what the token costs the host; run.sh sets the daemon's CPU per token beside it).
//
// --processes P,...: instead of threads, P processes of one thread and one session each, the model of
// the daemon's signer processes. They are forked before anything calls C_Initialize (this process never
// loads the module in that mode: a short-lived child makes the key and another destroys it), and each
// child loads and initialises the module itself, one after the other. They start together on a flag
// in shared memory and stop on another; the row's rate is the sum of the children's rates, its
// percentiles are over every call of every child, and its CPU per signature is the children's CPU
// summed over their signatures summed. The column "threads" then holds the process count (the header
// says "processes").
// Cryptoki is called directly here on purpose: the point is to measure the token without hsmsignd's own
// layer in between.
#include <p11-kit/pkcs11.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
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
  std::string init_args;  // CK_C_INITIALIZE_ARGS.pReserved; empty: NULL
  double seconds = 2.0;
  std::vector<int> threads{1, 2, 4};
  std::vector<int> processes;  // non-empty: processes of one thread each instead of threads
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
    else if (k == "--init-args") o.init_args = v;
    else if (k == "--seconds") o.seconds = std::stod(v);
    else if (k == "--threads") {
      o.threads.clear();
      for (const auto& t : split(v)) o.threads.push_back(std::stoi(t));
    } else if (k == "--processes") {
      for (const auto& p : split(v)) o.processes.push_back(std::stoi(p));
      for (int p : o.processes)
        if (p < 1 || p > 64) throw std::runtime_error("--processes takes 1 to 64");
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


// ---- --processes: one process per session, forked before C_Initialize ---------------------------------

constexpr int kMaxProcesses = 64;
constexpr std::size_t kMaxLatencies = std::size_t{1} << 21;  // recorded per child; beyond, only counted

// What the parent and its children share, in an anonymous MAP_SHARED mapping made before the fork.
struct SharedRun {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  struct Child {
    long signatures = 0;  // all of them; the first kMaxLatencies have their latency recorded
    double elapsed = 0;   // seconds from go to stop, as this child saw them
    double cpu = 0;       // this child's CPU seconds over that interval
    char error[160] = {};
  } child[kMaxProcesses];
};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the start and stop flags must work across processes");

template <class T>
T* map_shared(std::size_t count) {
  void* p = ::mmap(nullptr, sizeof(T) * count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
  return static_cast<T*>(p);
}

// Runs fn in a forked child (which loads the module itself) and waits for it; throws if it failed.
template <class F>
void in_child(const char* what, F&& fn) {
  std::fflush(nullptr);  // or the child would print what this process has buffered once more
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int rc = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hsmsignd-bench-raw (%s): %s\n", what, e.what());
      rc = 1;
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(std::string(what) + " failed in its child process");
}

struct Loaded {  // the module, the token and a logged-in pool of one session, in this process
  std::shared_ptr<pkcs11::Module> module;
  pkcs11::TokenInfo token;
  std::unique_ptr<pkcs11::SessionPool> pool;
};

Loaded load_token(const Options& opt) {
  Loaded l;
  l.module = pkcs11::Module::load(opt.module, opt.init_args).value();
  l.token = pkcs11::find_token(*l.module, {opt.token, {}}).value();
  l.pool = pkcs11::SessionPool::open(l.module, l.token, pkcs11::Pin::read_file(opt.pin_file).value(), {1}).value();
  return l;
}

// One child: its own C_Initialize, login and session; signs from go to stop.
void signer_child(const Options& opt, Algorithm alg, const Bytes& id, SharedRun& shared, int index, double* latencies) {
  auto& me = shared.child[index];
  const auto fail = [&me](const std::string& why) {
    std::snprintf(me.error, sizeof me.error, "%s", why.c_str());
    std::fflush(nullptr);
    ::_exit(1);
  };
  // One child at a time initialises and logs in, each after the one before is ready: SoftHSM's file
  // store read by one process while another logs in fails now and then ("no initialised token",
  // CKR_GENERAL_ERROR from C_Login). The measurement starts only once all are ready.
  while (shared.ready.load() < index) {
    if (shared.stop.load()) ::_exit(1);
    ::usleep(200);
  }
  try {
    Loaded l = load_token(opt);
    auto* fl = static_cast<CK_FUNCTION_LIST*>(l.module->raw_function_list());
    auto lease = l.pool->acquire().value();
    const auto found = pkcs11::find_key(lease.session(), id).value();
    if (!found) fail("the benchmark key is not on the token");
    const CK_SESSION_HANDLE session = lease.session().handle;
    const CK_OBJECT_HANDLE key = found->private_key;
    std::vector<CK_BYTE> input(ec_field_size(alg) != 0 ? digest_size(alg) : 180);
    RAND_bytes(input.data(), static_cast<int>(input.size()));
    CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM mech = mechanism_for(alg, &pss);
    std::vector<CK_BYTE> sig(1024);
    shared.ready.fetch_add(1);
    // Polled with a sleep, not a spin: a sibling may still be initialising on the same cores.
    while (!shared.go.load(std::memory_order_acquire)) ::usleep(100);
    const double cpu_before = cpu_seconds();
    const auto start = Clock::now();
    long n = 0;
    while (!shared.stop.load(std::memory_order_relaxed)) {
      CK_ULONG len = sig.size();
      const auto before = Clock::now();
      if (fl->C_SignInit(session, &mech, key) != CKR_OK ||
          fl->C_Sign(session, input.data(), input.size(), sig.data(), &len) != CKR_OK)
        fail("C_Sign failed during the run");
      if (static_cast<std::size_t>(n) < kMaxLatencies)
        latencies[n] = std::chrono::duration<double, std::micro>(Clock::now() - before).count();
      ++n;
    }
    me.elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    me.cpu = cpu_seconds() - cpu_before;
    me.signatures = n;
  } catch (const std::exception& e) {
    fail(e.what());
  }
  // The lease, pool and module close the session, log out and C_Finalize on the way out of the try.
  std::fflush(nullptr);
  ::_exit(0);
}

Row measure_processes(const Options& opt, Algorithm alg, const Bytes& id, int processes) {
  auto* shared = new (map_shared<SharedRun>(1)) SharedRun();
  const std::size_t slots = kMaxLatencies * static_cast<std::size_t>(processes);
  double* latencies = map_shared<double>(slots);
  std::vector<pid_t> children;
  std::string error;
  for (int i = 0; i < processes; ++i) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      error = std::string("fork: ") + std::strerror(errno);
      break;
    }
    if (pid == 0) signer_child(opt, alg, id, *shared, i, latencies + kMaxLatencies * static_cast<std::size_t>(i));
    children.push_back(pid);
  }
  // Every child ready (or one gone), at most 60 s.
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (error.empty() && shared->ready.load() < processes) {
    for (pid_t pid : children) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        error = "a child process ended before the run";
        std::replace(children.begin(), children.end(), pid, pid_t{0});
      }
    }
    if (Clock::now() > give_up) error = "the child processes did not get ready within 60 s";
    ::usleep(1000);
  }
  if (error.empty()) {
    shared->go.store(true, std::memory_order_release);
    std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
  }
  shared->stop.store(true);
  shared->go.store(true);
  for (pid_t pid : children) {
    if (pid == 0) continue;
    if (!error.empty()) ::kill(pid, SIGKILL);
    int status = 0;
    if (::waitpid(pid, &status, 0) == pid && (!WIFEXITED(status) || WEXITSTATUS(status) != 0) && error.empty())
      error = "a child process failed";
  }
  std::vector<double> all;
  double rate = 0, cpu = 0;
  long signatures = 0;
  for (int i = 0; i < processes; ++i) {
    const auto& c = shared->child[i];
    if (c.error[0] != '\0') error += std::string(error.empty() ? "" : "; ") + c.error;
    if (c.elapsed > 0) rate += static_cast<double>(c.signatures) / c.elapsed;
    cpu += c.cpu;
    signatures += c.signatures;
    const double* mine = latencies + kMaxLatencies * static_cast<std::size_t>(i);
    all.insert(all.end(), mine, mine + std::min<std::size_t>(static_cast<std::size_t>(c.signatures), kMaxLatencies));
  }
  ::munmap(latencies, sizeof(double) * slots);
  shared->~SharedRun();
  ::munmap(shared, sizeof(SharedRun));
  if (!error.empty()) throw std::runtime_error(error);
  return {rate, rate > 0 ? 1e6 * processes / rate : 0, percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999),
          1e6 * cpu / static_cast<double>(std::max<long>(signatures, 1))};
}

// The --processes mode: this process never calls C_Initialize; children make, use and destroy the key.
int run_processes(const Options& opt) {
  std::string model = "?", manufacturer = "?";
  {
    // The token's description comes through the pipe from a child, to keep the module out of here.
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    in_child("reading the token's description", [&] {
      ::close(fds[0]);
      Loaded l = load_token(opt);
      const std::string line = l.token.model + "\n" + l.token.manufacturer + "\n";
      if (::write(fds[1], line.data(), line.size()) < 0) throw std::runtime_error("write");
    });
    ::close(fds[1]);
    std::string text;
    char buf[512];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    std::stringstream lines(text);
    std::getline(lines, model);
    std::getline(lines, manufacturer);
  }
  std::printf("# raw token baseline: C_SignInit + C_Sign, processes of one thread and one session each, "
              "forked before C_Initialize, %.1f s per row\n",
              opt.seconds);
  std::printf("# token: %s (%s)\n", model.c_str(), manufacturer.c_str());
  std::printf("%-8s %8s %14s %12s %9s %9s %9s %11s\n", "alg", "processes", "signatures/s", "us/signature", "p50 us",
              "p99 us", "p999 us", "cpu us/sig");
  for (Algorithm alg : opt.algorithms) {
    Bytes id(16);
    RAND_bytes(id.data(), static_cast<int>(id.size()));
    in_child("generating the benchmark key", [&] {
      Loaded l = load_token(opt);
      auto lease = l.pool->acquire().value();
      (void)pkcs11::generate_key_pair(lease.session(), {alg, 2048, id, "bench-raw"}).value();
    });
    std::string failed;
    for (int processes : opt.processes) {
      try {
        const Row row = measure_processes(opt, alg, id, processes);
        std::printf("%-8s %8d %14.0f %12.1f %9.0f %9.0f %9.0f %11.1f\n", std::string(name(alg)).c_str(), processes, row.rate,
                    row.mean_us, row.p50_us, row.p99_us, row.p999_us, row.cpu_us);
        std::fflush(stdout);
      } catch (const std::exception& e) {
        failed = e.what();
        break;
      }
    }
    in_child("destroying the benchmark key", [&] {
      Loaded l = load_token(opt);
      auto lease = l.pool->acquire().value();
      (void)pkcs11::destroy_key(lease.session(), id);
    });
    if (!failed.empty()) throw std::runtime_error(failed);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  if (!opt.processes.empty()) return run_processes(opt);
  auto module = pkcs11::Module::load(opt.module, opt.init_args).value();
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
