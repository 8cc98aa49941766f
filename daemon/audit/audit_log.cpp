#include "audit/audit_log.h"

#include "audit/chain.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/rfc3339.h"
#include "common/thread_priority.h"
#include "log/log.h"
#include "crypto/digest.h"
#include "jose/base64url.h"

namespace hsmsignd::audit {
namespace {

// About one ES256 signature in SoftHSM: long enough for the signatures in flight to join a batch, short
// beside the fsync itself. Measured with bench/: at 16 and 64 connections it lifts the rate and halves
// p99; at 1 connection it is never taken.
constexpr std::chrono::microseconds kCommitLinger{150};

// The last complete line of a file and the size up to its newline; a torn tail is not part of it.
struct Tail {
  std::string line;
  std::uint64_t size = 0;  // bytes up to and including the last newline
};

Tail read_tail(const std::filesystem::path& path) {
  // Lines are short (no token, no claims): the last 1 MiB holds the last complete one.
  constexpr std::uint64_t kWindow = 1 << 20;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto end = static_cast<std::uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
  const std::uint64_t from = end > kWindow ? end - kWindow : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Tail t;
  const auto last = content.rfind('\n');
  if (last == std::string::npos) return t;
  t.size = from + last + 1;
  const auto before = last == 0 ? std::string::npos : content.rfind('\n', last - 1);
  const std::size_t start = before == std::string::npos ? 0 : before + 1;
  t.line = content.substr(start, last - start);
  return t;
}

std::uint64_t seq_of(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned())
    throw std::runtime_error("the audit log's last line is not an audit record");
  return j["seq"].get<std::uint64_t>();
}

}  // namespace

AuditLog::AuditLog(std::filesystem::path file, std::uint64_t max_size) : file_(std::move(file)), max_size_(max_size) {
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot open audit log " + file_.string() + ": " + std::strerror(errno));
  Tail tail = read_tail(file_);
  struct stat st {};
  ::fstat(fd_, &st);
  if (static_cast<std::uint64_t>(st.st_size) != tail.size) {
    // A line that never reached its newline was never acknowledged: it is not part of the record.
    if (::ftruncate(fd_, static_cast<off_t>(tail.size)) != 0)
      throw std::runtime_error("cannot cut the torn last line of " + file_.string());
  }
  size_ = tail.size;
  if (tail.line.empty()) {
    if (auto rotated = rotated_files(file_); !rotated.empty()) tail = read_tail(rotated.back());
  }
  if (tail.line.empty()) {
    seq_ = 0;
    prev_ = kGenesis;
  } else {
    seq_ = seq_of(tail.line);
    prev_ = hex_sha256(tail.line);
  }
  first_seq_ = size_ == 0 ? seq_ + 1 : 0;
  if (size_ != 0) {
    std::ifstream in(file_);
    std::string first;
    std::getline(in, first);
    first_seq_ = seq_of(first);
  }
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "hsmsignd-audit");
    prefer_short_slices();  // every signed request waits on this thread
    run();
  });
}

AuditLog::~AuditLog() {
  stop();
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::append(Record record, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(record), std::move(done), {}, false});
    ++appended_;
  }
  wake_.notify_one();
}

void AuditLog::checkpoint(std::function<void(std::uint64_t)> done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({Record{"checkpoint"}, {}, std::move(done), true});
    ++appended_;
  }
  wake_.notify_one();
}

void AuditLog::set_checkpoint_signer(CheckpointSigner signer) {
  std::lock_guard lock(mutex_);
  signer_ = std::move(signer);
}

bool AuditLog::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = appended_;
  all_written_ = true;
  const bool done = written_.wait_for(lock, timeout, [&] { return finished_ >= target || !thread_.joinable(); });
  return done && all_written_;
}

void AuditLog::rotate() {
  {
    std::lock_guard lock(mutex_);
    rotate_requested_ = true;
  }
  wake_.notify_one();
}

void AuditLog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::string AuditLog::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

std::string AuditLog::render(const Pending& p, std::uint64_t seq, const std::string& prev) {
  const std::string time = rfc3339_micros(std::chrono::system_clock::now());
  std::string checkpoint;  // a checkpoint's members are made here: they sign the chain's head
  if (p.checkpoint) {
    std::optional<CheckpointSigner> signer;
    {
      std::lock_guard lock(mutex_);
      signer = signer_;
    }
    if (!signer) return {};
    auto signature = signer->sign(checkpoint_message(seq, time, prev));
    if (!signature) return {};
    JsonObjectWriter::members(checkpoint)
        .string("kid", signer->kid)
        .string("alg", signer->alg)
        .string("head", prev)
        .string("signature", jose::base64url_encode(*signature));
  }
  // Written straight: seq, time and event (names of our own, never escaped), the members, prev last.
  const std::string& members = p.checkpoint ? checkpoint : p.record.members;
  std::string line;
  line.reserve(160 + members.size());
  line += "{\"seq\":";
  line += std::to_string(seq);
  line += ",\"time\":\"";
  line += time;
  line += "\",\"event\":\"";
  line += p.record.event;
  line += '"';
  if (!members.empty()) {
    line += ',';
    line += members;
  }
  line += ",\"prev\":\"";
  line += prev;
  line += "\"}";
  return line;
}

bool AuditLog::write_batch(std::deque<Pending>& batch) {
  std::string out;
  std::uint64_t seq = seq_;
  std::string prev = prev_;
  std::vector<std::uint64_t> rendered(batch.size(), 0);  // each line's seq; 0: not rendered
  for (std::size_t i = 0; i < batch.size(); ++i) {
    std::string line = render(batch[i], seq + 1, prev);
    if (line.empty()) continue;  // a checkpoint the token could not sign: reported as failed
    rendered[i] = ++seq;
    prev = hex_sha256(line);
    out += line;
    out += '\n';
  }
  bool ok = true;
  std::string why;
  for (std::size_t done = 0; done < out.size();) {
    const ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      why = std::strerror(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (ok && !out.empty() && ::fdatasync(fd_) != 0) {
    ok = false;
    why = std::strerror(errno);
  }
  if (!ok) {
    // Nothing of a failed batch stays behind: the chain goes on from the last durable line.
    (void)::ftruncate(fd_, static_cast<off_t>(size_));
    std::lock_guard lock(mutex_);
    failure_ = "the audit log cannot be written: " + why;
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    if (size_ == 0 && !out.empty()) first_seq_ = seq_ + 1;
    size_ += out.size();
    seq_ = seq;
    prev_ = prev;
    failure_.clear();
  }
  for (std::size_t i = 0; i < batch.size(); ++i)
    batch[i].finish(rendered[i]);
  return true;
}

void AuditLog::rotate_locked_file() {
  if (size_ == 0) return;  // nothing to set aside
  const auto rotated = file_.string() + "." + std::to_string(first_seq_);
  if (::rename(file_.c_str(), rotated.c_str()) != 0) return;
  const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    (void)::rename(rotated.c_str(), file_.c_str());
    return;
  }
  ::close(fd_);
  fd_ = fd;
  size_ = 0;
  first_seq_ = seq_ + 1;
  if (auto dir = ::open(file_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void AuditLog::run() {
  auto backoff = std::chrono::milliseconds(50);
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || rotate_requested_; });
    if (rotate_requested_) {
      rotate_requested_ = false;
      lock.unlock();
      rotate_locked_file();
      lock.lock();
    }
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    if (last_batch_ > 1) {
      // Under load (the last batch held more than one line) wait a moment before taking the batch: the
      // requests being signed now join this fsync instead of each paying for the next. A lone request
      // never waits. A sleep, not a wait on wake_, so that appends in the meantime wake no one.
      lock.unlock();
      std::this_thread::sleep_for(kCommitLinger);
      lock.lock();
    }
    std::deque<Pending> batch;
    batch.swap(queue_);
    last_batch_ = batch.size();
    lock.unlock();
    const bool ok = write_batch(batch);
    std::size_t finished = batch.size();
    if (!ok) {
      // Requests fail now and are refused; facts that already happened wait for the disk to come back,
      // and so does the record of the outage itself, whose eventual write also tells that it is over.
      std::deque<Pending> keep;
      for (auto& p : batch) {
        if (p.record.retry_until_written) {
          keep.push_back(std::move(p));
          --finished;
        } else {
          p.finish(0);
        }
      }
      const bool record_outage = !outage_recorded_;
      if (record_outage) log::error("audit_write_failed", {{"file", file_.string()}, {"reason", failure()}});
      if (record_outage) {
        Record outage{"error", true};
        outage.add().string("reason", failure());
        keep.push_back({std::move(outage), {}, {}, false});
      }
      outage_recorded_ = true;
      lock.lock();
      if (record_outage) ++appended_;
      all_written_ = false;
      for (auto it = keep.rbegin(); it != keep.rend(); ++it) queue_.push_front(std::move(*it));
      finished_ += finished;
      written_.notify_all();
      if (stopping_ && !keep.empty()) return;  // nothing more can be done; the lines stay unwritten
      wake_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      continue;
    }
    backoff = std::chrono::milliseconds(50);
    if (outage_recorded_) log::info("audit_write_recovered", {{"file", file_.string()}});
    outage_recorded_ = false;
    if (max_size_ != 0 && size_ >= max_size_) rotate_locked_file();
    lock.lock();
    finished_ += finished;
    written_.notify_all();
  }
}

}  // namespace hsmsignd::audit
