// Start to ready: the time from exec of the daemon to its first 200 on GET /healthz over the issuer socket.
//
//   hsmsignd-bench-startup --socket PATH [--runs 5] [--timeout 30] -- COMMAND [ARGS...]
//   hsmsignd-bench-startup --socket PATH --wait [--pid PID] [--timeout 30]
//
// With a command: starts it --runs times, one after the other, each time asking /healthz every 200 µs
// from the moment before fork until the answer is 200, then stops it (SIGTERM) and waits for it to
// exit. Prints one line: the median, the fastest and the slowest in milliseconds, then every run.
// With --wait: only waits until whatever is on the socket answers 200 (run.sh uses it after a start),
// and gives up at once when process PID, the daemon started, has gone.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::microseconds(200);

struct Options {
  std::string socket;
  int runs = 5;
  double timeout = 30;
  bool wait_only = false;
  pid_t pid = 0;  // --wait: the daemon that should answer
  std::vector<std::string> command;
};

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--") {
      ++i;
      break;
    }
    if (k == "--wait") {
      o.wait_only = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--socket") o.socket = v;
    else if (k == "--runs") o.runs = std::max(1, std::stoi(v));
    else if (k == "--timeout") o.timeout = std::stod(v);
    else if (k == "--pid") o.pid = static_cast<pid_t>(std::stol(v));
    else throw std::runtime_error("unknown option " + k);
  }
  for (; i < argc; ++i) o.command.emplace_back(argv[i]);
  if (o.socket.empty()) throw std::runtime_error("--socket is required");
  if (!o.wait_only && o.command.empty()) throw std::runtime_error("a command after -- is required (or --wait)");
  return o;
}

// A connected socket that closes itself; empty when nobody listens yet.
class Connection {
 public:
  explicit Connection(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) close();
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

 private:
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

// One GET /healthz; the status, or nothing when the daemon is not listening (or left mid-answer).
std::optional<int> healthz_status(const std::string& socket) {
  Connection c(socket);
  if (!c.connected()) return std::nullopt;
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
  if (::send(c.fd(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return std::nullopt;
  char head[16] = {};
  std::size_t got = 0;
  while (got < 12) {
    const ssize_t n = ::recv(c.fd(), head + got, sizeof head - 1 - got, 0);
    if (n <= 0) return std::nullopt;
    got += static_cast<std::size_t>(n);
  }
  return std::atoi(head + 9);  // "HTTP/1.1 200"
}

// Asks until the answer is 200; false when `deadline` comes first (or `alive` says the daemon died).
template <class Alive>
bool wait_until_ready(const std::string& socket, Clock::time_point deadline, Alive alive) {
  while (Clock::now() < deadline) {
    if (healthz_status(socket) == 200) return true;
    if (!alive()) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
  return false;
}

// The daemon under test: started on construction, stopped (SIGTERM, then waited for) on destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& command) {
    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      ::execv(argv[0], argv.data());
      std::fprintf(stderr, "hsmsignd-bench-startup: exec %s: %s\n", argv[0], std::strerror(errno));
      ::_exit(127);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (running()) ::kill(pid_, SIGTERM);
    reap(true);
  }

  bool running() {
    reap(false);
    return pid_ > 0;
  }

 private:
  void reap(bool block) {
    if (pid_ <= 0) return;
    int status = 0;
    if (::waitpid(pid_, &status, block ? 0 : WNOHANG) == pid_) pid_ = -1;
  }
  pid_t pid_ = -1;
};

// A process that exited but was not waited for yet is a zombie: gone, for this purpose.
bool process_alive(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return false;
  char line[512] = {};
  const bool read = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  const char* end_of_name = std::strrchr(line, ')');
  return read && end_of_name != nullptr && end_of_name[1] == ' ' && end_of_name[2] != 'Z';
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double time_one_start(const Options& opt) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.timeout));
  const auto start = Clock::now();
  Child daemon(opt.command);
  if (!wait_until_ready(opt.socket, deadline, [&] { return daemon.running(); }))
    throw std::runtime_error("the daemon did not answer 200 on /healthz (see its log)");
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  if (opt.wait_only) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.timeout));
    const auto alive = [&] { return opt.pid == 0 || process_alive(opt.pid); };
    if (wait_until_ready(opt.socket, deadline, alive)) return 0;
    std::fprintf(stderr, "hsmsignd-bench-startup: nothing answered 200 on %s%s\n", opt.socket.c_str(),
                 alive() ? " in time" : ": the daemon exited");
    return 1;
  }
  std::vector<double> times;
  for (int i = 0; i < opt.runs; ++i) times.push_back(time_one_start(opt));
  std::printf("%.1f %.1f %.1f", median(times), *std::min_element(times.begin(), times.end()),
              *std::max_element(times.begin(), times.end()));
  for (double t : times) std::printf(" %.1f", t);
  std::printf("\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hsmsignd-bench-startup: %s\n", e.what());
  return 1;
}
