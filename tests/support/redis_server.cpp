#include "redis_server.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "redis_client.h"

namespace hsmsignd::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRedisServer = "/usr/bin/redis-server";
// Long for a loaded CI machine; a Redis that takes this long to answer is broken, not slow.
constexpr auto kStartPatience = 30s;
constexpr auto kStopPatience = 5s;

}  // namespace

RedisServer::RedisServer(std::string password) : password_(std::move(password)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hsmsignd-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
}

RedisServer::~RedisServer() {
  if (running()) {
    thaw();
    stop();
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::log() const {
  std::ifstream in(dir_ / "redis.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void RedisServer::start() {
  if (running()) throw std::runtime_error("the test Redis is already running");
  std::vector<std::string> args = {kRedisServer,
                                   "--port", "0",  // no TCP at all: nothing else on the machine can reach it
                                   "--unixsocket", socket().string(),
                                   "--unixsocketperm", "700",
                                   "--dir", dir_.string(),
                                   "--appendonly", "yes",
                                   "--appendfsync", "always",
                                   "--save", "",
                                   "--daemonize", "no",
                                   "--logfile", (dir_ / "redis.log").string()};
  if (!password_.empty()) {
    args.push_back("--requirepass");
    args.push_back(password_);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test process has threads.
    // A test process that crashes or is killed by ctest's timeout takes its Redis with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::close_range(3, ~0U, 0);  // the test process's own connections stay out of the server
    ::execv(kRedisServer, argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  wait_until_answering();
}

void RedisServer::wait_until_answering() {
  const auto deadline = std::chrono::steady_clock::now() + kStartPatience;
  std::string last_error;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("the test Redis exited at start; its log:\n" + log());
    }
    try {
      RedisClient client(socket(), password_);
      auto pong = client.command({"PING"});
      if (pong->type == REDIS_REPLY_STATUS && std::string(pong->str) == "PONG") return;
      last_error = pong->type == REDIS_REPLY_ERROR ? pong->str : "unexpected reply";  // LOADING while it reads the AOF
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill();
      throw std::runtime_error("the test Redis does not answer PING (" + last_error + "); its log:\n" + log());
    }
    std::this_thread::sleep_for(5ms);  // polling a child that gives no other sign of readiness
  }
}

void RedisServer::reap() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void RedisServer::stop() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopPatience;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
  kill();
}

void RedisServer::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  reap();
}

void RedisServer::freeze() {
  if (running()) ::kill(pid_, SIGSTOP);
}

void RedisServer::thaw() {
  if (running()) ::kill(pid_, SIGCONT);
}

}  // namespace hsmsignd::testing
