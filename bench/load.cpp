// The load generator: C keep-alive connections over the daemon's Unix socket, each asking for a JWT.
// One thread and epoll, so the generator itself costs little of the CPU the daemon and token need.
//
//   hsmsignd-bench-load --socket PATH [--connections 8] [--seconds 5] [--keyset default] [--pipeline 1]
//                       [--path /v1/jwt] [--body JSON] [--rate R] [--extended] [--record FILE]
//   (a "%N%" in --body becomes the request's number: 0, 1, 2... so that each request is another one)
//   hsmsignd-bench-load --socket PATH --idle N [--seconds 5]
//
// Closed loop (the default): each connection asks, waits for the answer and asks again (or keeps
// `--pipeline` requests in flight) for T seconds; the rate is what the daemon can take.
// Open loop (`--rate R`): R requests a second on a fixed schedule, handed to whichever connection has
// room (up to `--pipeline` in flight); a request the generator could not send on time waits in a
// backlog, and its latency counts from the time it was due, not from when it was sent. Otherwise a
// slow answer would delay the requests behind it and hide their wait (coordinated omission).
//
// Prints one line: connections rate p50 p99 p999 (microseconds) and the count of non-200 answers;
// with --extended also: answers, elapsed seconds, and the CPU seconds this generator used itself.
// --record FILE writes one line per request: "SENT_NS DONE_NS STATUS [JWT]" (CLOCK_MONOTONIC
// nanoseconds, the time it was sent or due and the time its answer was read; the "jwt" member of a 200
// answer), for bench/signer_kill.py. With it, a connection the daemon closes does not end the run: its
// requests in flight are written with status 0 at the time of the close, and it is connected again
// (if that fails, it stays closed). A request still unanswered when the run gives up (10 s after
// its end) is written as "SENT_NS -1 -1".
// --idle N opens N connections, asks once on each, prints "idle N ready ERRORS" once all have answered,
// then holds them open and quiet for --seconds (for the daemon's memory per idle connection).
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDrainLimit = std::chrono::seconds(10);  // after the run, answers still owed are waited for this long
constexpr std::uint64_t kTimerTag = UINT64_MAX;         // the epoll tag of the timer; connections use their index

struct Options {
  std::string socket;
  int connections = 8;
  double seconds = 5;
  int pipeline = 1;
  double rate = 0;  // requests per second on a fixed schedule; 0: closed loop
  int idle = 0;     // hold this many quiet connections instead of loading
  bool extended = false;
  std::string path = "/v1/jwt";
  std::string body;
  std::string keyset = "default";
  std::string record;  // --record FILE: every request's times, status and token
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--extended") {
      o.extended = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--socket") o.socket = v;
    else if (k == "--connections") o.connections = std::max(1, std::stoi(v));
    else if (k == "--seconds") o.seconds = std::stod(v);
    else if (k == "--pipeline") o.pipeline = std::max(1, std::stoi(v));
    else if (k == "--rate") o.rate = std::stod(v);
    else if (k == "--idle") o.idle = std::max(1, std::stoi(v));
    else if (k == "--path") o.path = v;
    else if (k == "--body") o.body = v;
    else if (k == "--keyset") o.keyset = v;
    else if (k == "--record") o.record = v;
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.socket.empty()) throw std::runtime_error("--socket is required");
  if (o.rate < 0) throw std::runtime_error("--rate must be positive");
  if (o.body.empty()) o.body = R"({"sub":"bench-user","keyset":")" + o.keyset + R"("})";
  return o;
}

std::string make_request(const Options& o, const std::string& body) {
  return "POST " + o.path + " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}
std::string make_request(const Options& o) { return make_request(o, o.body); }

constexpr std::string_view kCounter = "%N%";

std::runtime_error system_error(const std::string& what) { return std::runtime_error(what + ": " + std::strerror(errno)); }

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Fd connect_unix(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.open()) throw system_error("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw system_error("cannot connect to " + path);
  return fd;
}

void send_all(int fd, const std::string& data) {
  for (std::size_t done = 0; done < data.size();) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) throw system_error("send");
    done += static_cast<std::size_t>(n);
  }
}

// Takes one whole answer off the front of `in`; returns its status, or 0 when it is not all there yet.
// With `body`, the answer's body goes there.
int take_response(std::string& in, std::string* body = nullptr) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  const auto cl = in.find("Content-Length: ");
  if (cl == std::string::npos || cl > end) throw std::runtime_error("answer without Content-Length");
  const std::size_t length = std::stoul(in.substr(cl + 16));
  if (in.size() < end + 4 + length) return 0;
  const int status = std::stoi(in.substr(9, 3));
  if (body != nullptr) body->assign(in, end + 4, length);
  in.erase(0, end + 4 + length);
  return status;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

// 1,000 idle connections need more descriptors than the usual soft limit of 1,024.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

struct Connection {
  Fd fd;
  std::string in;
  std::deque<Clock::time_point> due;  // one per request in flight, oldest first: when it was due
};

// epoll over the connections and one timer; the timer wakes the loop at the next scheduled send.
class EventLoop {
 public:
  EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)), timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) {
    if (!epoll_.open() || !timer_.open()) throw system_error("epoll/timerfd");
    add(timer_.get(), kTimerTag);
  }

  void add(int fd, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw system_error("epoll_ctl");
  }

  // Clock is steady_clock, which is CLOCK_MONOTONIC on Linux: its time points arm the timer as they are.
  void wake_at(Clock::time_point when) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
    itimerspec spec{};
    spec.it_value.tv_sec = std::max<long long>(ns / 1'000'000'000, 0);
    spec.it_value.tv_nsec = std::max<long long>(ns % 1'000'000'000, 1);
    ::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  // Waits for readiness; returns the tags of the connections that can be read (the timer is consumed).
  const std::vector<std::uint64_t>& wait(std::size_t max_events) {
    events_.resize(max_events + 1);
    ready_.clear();
    const int n = ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), 1000);
    if (n < 0 && errno != EINTR) throw system_error("epoll_wait");
    for (int e = 0; e < n; ++e) {
      const std::uint64_t tag = events_[static_cast<std::size_t>(e)].data.u64;
      if (tag != kTimerTag) {
        ready_.push_back(tag);
        continue;
      }
      std::uint64_t expirations = 0;
      [[maybe_unused]] const ssize_t got = ::read(timer_.get(), &expirations, sizeof expirations);
    }
    return ready_;
  }

 private:
  Fd epoll_;
  Fd timer_;
  std::vector<epoll_event> events_;
  std::vector<std::uint64_t> ready_;
};

struct Result {
  std::vector<double> latencies;  // microseconds
  long errors = 0;
  double elapsed = 0;
};

long long monotonic_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The "jwt" member of an answer's JSON body, or "" (the daemon writes it without spaces or escapes).
std::string_view jwt_of(std::string_view body) {
  constexpr std::string_view key = R"("jwt":")";
  const auto at = body.find(key);
  if (at == std::string_view::npos) return {};
  const auto from = at + key.size();
  const auto to = body.find('"', from);
  return to == std::string_view::npos ? std::string_view{} : body.substr(from, to - from);
}

// --record's file, written through a large buffer.
class Recorder {
 public:
  explicit Recorder(const std::string& path) {
    if (path.empty()) return;
    file_ = std::fopen(path.c_str(), "w");
    if (file_ == nullptr) throw system_error("cannot write " + path);
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;
  ~Recorder() {
    if (file_ != nullptr) std::fclose(file_);
  }
  bool on() const { return file_ != nullptr; }
  void answer(Clock::time_point sent, Clock::time_point done, int status, std::string_view jwt) {
    std::fprintf(file_, "%lld %lld %d", monotonic_ns(sent), monotonic_ns(done), status);
    if (!jwt.empty()) std::fprintf(file_, " %.*s", static_cast<int>(jwt.size()), jwt.data());
    std::fputc('\n', file_);
  }
  void unanswered(Clock::time_point sent) { std::fprintf(file_, "%lld -1 -1\n", monotonic_ns(sent)); }

 private:
  std::FILE* file_ = nullptr;
};

// Runs one measurement, closed or open loop; see the comment at the top.
class Generator {
 public:
  explicit Generator(const Options& o)
      : opt_(o), request_(make_request(o)), conns_(static_cast<std::size_t>(o.connections)), record_(o.record) {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].fd = connect_unix(o.socket);
      loop_.add(conns_[i].fd.get(), i);
    }
    result_.latencies.reserve(1 << 20);
  }

  Result run() {
    start_ = Clock::now();
    stop_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.seconds));
    next_due_ = start_;
    if (open_loop()) interval_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / opt_.rate));
    for (Clock::time_point now = start_; !finished(now); now = Clock::now()) {
      stopping_ = now >= stop_;
      schedule_due(now);
      for (auto& c : conns_) fill(c, now);
      loop_.wake_at(stopping_ ? stop_ + kDrainLimit : (open_loop() ? next_due_ : stop_));
      for (std::uint64_t i : loop_.wait(conns_.size())) read_answers(conns_[i], Clock::now());
    }
    result_.elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    result_.errors += static_cast<long>(backlog_.size() + in_flight());  // owed and never answered
    if (record_.on()) {
      for (const auto& c : conns_)
        for (auto due : c.due) record_.unanswered(due);
      for (auto due : backlog_) record_.unanswered(due);
    }
    return std::move(result_);
  }

 private:
  bool open_loop() const { return opt_.rate > 0; }

  std::string next_request() {
    const std::size_t at = opt_.body.find(kCounter);
    if (at == std::string::npos) return request_;
    std::string body = opt_.body;
    body.replace(at, kCounter.size(), std::to_string(sent_++));
    return make_request(opt_, body);
  }

  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& c : conns_) n += c.due.size();
    return n;
  }

  bool finished(Clock::time_point now) const {
    if (now < stop_) return false;
    return (backlog_.empty() && in_flight() == 0) || now >= stop_ + kDrainLimit;
  }

  // Open loop: every slot of the schedule that has come joins the backlog, in order.
  void schedule_due(Clock::time_point now) {
    if (!open_loop()) return;
    for (; next_due_ <= now && next_due_ < stop_; next_due_ += interval_) backlog_.push_back(next_due_);
  }

  // Sends on this connection until it has --pipeline requests in flight (or nothing is left to send).
  void fill(Connection& c, Clock::time_point now) {
    if (!c.fd.open()) return;  // --record: closed by the daemon and could not be connected again
    std::string batch;
    while (c.due.size() < static_cast<std::size_t>(opt_.pipeline)) {
      if (open_loop()) {
        if (backlog_.empty()) break;
        c.due.push_back(backlog_.front());
        backlog_.pop_front();
      } else {
        if (stopping_) break;
        c.due.push_back(now);
      }
      batch += next_request();
    }
    if (batch.empty()) return;
    if (!record_.on()) return send_all(c.fd.get(), batch);
    try {
      send_all(c.fd.get(), batch);
    } catch (const std::exception&) {
      // The daemon closed the connection under the send (EPIPE): as for a close seen by recv, unless
      // this is already the send on a connection made again just now.
      if (reconnecting_) drop(c, now);
      else reconnect(c, now);
    }
  }

  void read_answers(Connection& c, Clock::time_point now) {
    char buf[65536];
    const ssize_t got = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (got <= 0 && record_.on()) return reconnect(c, now);
    if (got <= 0) throw std::runtime_error("the daemon closed a connection");
    c.in.append(buf, static_cast<std::size_t>(got));
    std::string body;
    while (int status = take_response(c.in, record_.on() ? &body : nullptr)) {
      if (c.due.empty()) throw std::runtime_error("an answer nobody asked for");
      if (status != 200) ++result_.errors;
      if (record_.on()) record_.answer(c.due.front(), now, status, status == 200 ? jwt_of(body) : std::string_view{});
      result_.latencies.push_back(std::chrono::duration<double, std::micro>(now - c.due.front()).count());
      c.due.pop_front();
    }
    fill(c, now);
  }

  // --record: the daemon closed this connection. Its requests in flight are written with status 0 and
  // counted as errors, and it is closed here too.
  void drop(Connection& c, Clock::time_point now) {
    for (auto due : c.due) record_.answer(due, now, 0, {});
    result_.errors += static_cast<long>(c.due.size());
    c.due.clear();
    c.in.clear();
    c.fd.reset();
  }

  // drop(), then connected again (if that fails, it stays closed).
  void reconnect(Connection& c, Clock::time_point now) {
    drop(c, now);
    reconnecting_ = true;
    try {
      c.fd = connect_unix(opt_.socket);
      loop_.add(c.fd.get(), static_cast<std::uint64_t>(&c - conns_.data()));
    } catch (const std::exception& e) {
      c.fd.reset();
      std::fprintf(stderr, "hsmsignd-bench-load: a connection stays closed: %s\n", e.what());
    }
    fill(c, now);
    reconnecting_ = false;
  }

  const Options& opt_;
  const std::string request_;
  EventLoop loop_;
  std::vector<Connection> conns_;
  std::deque<Clock::time_point> backlog_;  // open loop: due, not yet sent
  Clock::time_point start_, stop_, next_due_;
  std::uint64_t sent_ = 0;  // requests made so far, for --body's %N%
  Clock::duration interval_{};
  bool stopping_ = false;
  bool reconnecting_ = false;  // --record: inside reconnect(), whose own send may fail too
  Result result_;
  Recorder record_;
};

// --idle: N connections, one answered request each, then quiet for --seconds.
int hold_idle(const Options& opt) {
  raise_descriptor_limit();
  const std::string request = make_request(opt);
  EventLoop loop;
  std::vector<Connection> conns(static_cast<std::size_t>(opt.idle));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_unix(opt.socket);
    loop.add(conns[i].fd.get(), i);
    send_all(conns[i].fd.get(), request);
  }
  std::size_t waiting = conns.size();
  long errors = 0;
  const auto give_up = Clock::now() + kDrainLimit;
  while (waiting > 0 && Clock::now() < give_up) {
    for (std::uint64_t i : loop.wait(conns.size())) {
      Connection& c = conns[i];
      char buf[4096];
      const ssize_t got = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (got <= 0) throw std::runtime_error("the daemon closed an idle connection");
      c.in.append(buf, static_cast<std::size_t>(got));
      while (int status = take_response(c.in)) {
        if (status != 200) ++errors;
        --waiting;
      }
    }
  }
  errors += static_cast<long>(waiting);
  std::printf("idle %d ready %ld\n", opt.idle, errors);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
  return errors == 0 ? 0 : 1;
}

int generate(const Options& opt) {
  // The schedule's wake-ups are microseconds apart: no timer slack on top of them.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  const double cpu_before = cpu_seconds();
  Generator generator(opt);
  Result r = generator.run();
  const double cpu = cpu_seconds() - cpu_before;
  const double rate = static_cast<double>(r.latencies.size()) / r.elapsed;
  const std::size_t answers = r.latencies.size();
  const double p50 = percentile(r.latencies, 0.50), p99 = percentile(r.latencies, 0.99),
               p999 = percentile(r.latencies, 0.999);
  std::printf("%d %.0f %.0f %.0f %.0f %ld", opt.connections, rate, p50, p99, p999, r.errors);
  if (opt.extended) std::printf(" %zu %.3f %.3f", answers, r.elapsed, cpu);
  std::printf("\n");
  return r.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  return opt.idle > 0 ? hold_idle(opt) : generate(opt);
} catch (const std::exception& e) {
  std::fprintf(stderr, "hsmsignd-bench-load: %s\n", e.what());
  return 1;
}
