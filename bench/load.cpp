// The load generator: C keep-alive connections over the daemon's Unix socket, each asking for a JWT,
// waiting for the answer and asking again (or keeping `--pipeline` requests in flight), for T seconds.
// One thread and epoll, so the generator itself costs little of the CPU the daemon and token need.
//
//   hsmsignd-bench-load --socket PATH [--connections 8] [--seconds 5] [--keyset default] [--pipeline 1]
//                       [--path /v1/jwt] [--body JSON]
//
// Prints one line: connections rate p50 p99 p999 (microseconds) and the count of non-200 answers.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string socket;
  int connections = 8;
  double seconds = 5;
  int pipeline = 1;
  std::string path = "/v1/jwt";
  std::string body;
  std::string keyset = "default";
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--socket") o.socket = v;
    else if (k == "--connections") o.connections = std::stoi(v);
    else if (k == "--seconds") o.seconds = std::stod(v);
    else if (k == "--pipeline") o.pipeline = std::max(1, std::stoi(v));
    else if (k == "--path") o.path = v;
    else if (k == "--body") o.body = v;
    else if (k == "--keyset") o.keyset = v;
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.socket.empty()) throw std::runtime_error("--socket is required");
  if (o.body.empty()) o.body = R"({"sub":"bench-user","keyset":")" + o.keyset + R"("})";
  return o;
}

struct Connection {
  int fd = -1;
  std::string in;
  std::deque<Clock::time_point> sent;  // one per request in flight, oldest first
};

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("cannot connect to " + path + ": " + std::strerror(errno));
  return fd;
}

void send_all(int fd, const std::string& data) {
  for (std::size_t done = 0; done < data.size();) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

// Takes one whole answer off the front of `in`; returns its status, or 0 when it is not all there yet.
int take_response(std::string& in) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  const auto cl = in.find("Content-Length: ");
  if (cl == std::string::npos || cl > end) throw std::runtime_error("answer without Content-Length");
  const std::size_t length = std::stoul(in.substr(cl + 16));
  if (in.size() < end + 4 + length) return 0;
  const int status = std::stoi(in.substr(9, 3));
  in.erase(0, end + 4 + length);
  return status;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  const std::string request = "POST " + opt.path + " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" +
                              "Content-Length: " + std::to_string(opt.body.size()) + "\r\n\r\n" + opt.body;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Connection> conns(static_cast<std::size_t>(opt.connections));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_unix(opt.socket);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }

  std::vector<double> latencies;
  latencies.reserve(1 << 20);
  long errors = 0;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.seconds));
  for (auto& c : conns) {
    std::string batch;
    for (int k = 0; k < opt.pipeline; ++k) {
      batch += request;
      c.sent.push_back(Clock::now());
    }
    send_all(c.fd, batch);
  }
  std::vector<epoll_event> events(conns.size());
  char buf[65536];
  bool stopping = false;
  std::size_t open = conns.size();
  while (open > 0) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    const auto now = Clock::now();
    if (now >= stop) stopping = true;
    for (int e = 0; e < n; ++e) {
      Connection& c = conns[events[static_cast<std::size_t>(e)].data.u64];
      const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) throw std::runtime_error("the daemon closed a connection");
      c.in.append(buf, static_cast<std::size_t>(got));
      std::string more;
      while (int status = take_response(c.in)) {
        if (status != 200) ++errors;
        latencies.push_back(std::chrono::duration<double, std::micro>(now - c.sent.front()).count());
        c.sent.pop_front();
        if (!stopping) {
          more += request;
          c.sent.push_back(now);
        }
      }
      if (!more.empty()) send_all(c.fd, more);
      if (stopping && c.sent.empty() && c.fd >= 0) {
        ::close(c.fd);
        c.fd = -1;
        --open;
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = static_cast<double>(latencies.size()) / elapsed;
  const double p50 = percentile(latencies, 0.50), p99 = percentile(latencies, 0.99), p999 = percentile(latencies, 0.999);
  std::printf("%d %.0f %.0f %.0f %.0f %ld\n", opt.connections, rate, p50, p99, p999, errors);
  return errors == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hsmsignd-bench-load: %s\n", e.what());
  return 1;
}
