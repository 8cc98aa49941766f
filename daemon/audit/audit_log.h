// The audit trail: JSON Lines, append-only, one event a line, each line carrying the SHA-256 of the
// line before it (`prev`), so the file is a hash chain; `checkpoint` lines carry the chain head signed
// inside the token. Lines are written by one thread in batches and made durable with one fsync per
// batch (group commit): a request is answered only once its line is on disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/json_writer.h"
#include "hsmsignd/bytes.h"

namespace hsmsignd::audit {

struct Record {
  explicit Record(std::string event, bool retry_until_written = false)
      : event(std::move(event)), retry_until_written(retry_until_written) {}

  // Appends members to the record, written in the order given after seq, time and event and before
  // prev, whose names they never use.
  JsonObjectWriter add() { return JsonObjectWriter::members(members); }

  std::string event;    // start, stop, login, config, keygen, activate, retire, destroy,
                        // issue, sign, deny, error, checkpoint
  std::string members;  // as JSON text: `"a":1,"b":"x"`
  // A fact that already happened (a key was generated, a peer was denied) is kept and retried until it
  // is written; a request's record fails fast instead, and the request is refused.
  bool retry_until_written = false;
};

// Signs a checkpoint's message inside the token; nullopt when the token cannot.
struct CheckpointSigner {
  std::string kid;
  std::string alg;
  std::function<std::optional<Bytes>(const std::string& message)> sign;
};

class AuditLog {
 public:
  // Opens `file` (created 0600 if absent) and continues its chain. A torn last line (a crash in the
  // middle of a write, so never acknowledged) is cut off. Throws std::runtime_error at start-up.
  AuditLog(std::filesystem::path file, std::uint64_t max_size);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues a record; `done(true)` runs on the writer thread once the line is durable, `done(false)`
  // if it could not be written.
  void append(Record record, std::function<void(bool durable)> done = {});
  // Waits until everything appended so far is written (or failed), at most `timeout`; true if all of
  // it was written.
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void set_checkpoint_signer(CheckpointSigner signer);
  // Queues a checkpoint line; `done` runs as for append(), with the checkpoint's seq once it is durable
  // and 0 if it could not be written.
  void checkpoint(std::function<void(std::uint64_t seq)> done = {});
  // Renames the current file to FILE.<first seq in it> and goes on in a new FILE (SIGHUP, or max_size).
  void rotate();
  // Writes what is queued, then stops the writer.
  void stop();

  // Empty while writing works; otherwise why it does not (the daemon then refuses to sign).
  std::string failure() const;

 private:
  struct Pending {
    Record record;
    std::function<void(bool)> done;                  // append()'s
    std::function<void(std::uint64_t seq)> on_seq;   // checkpoint()'s: its seq once durable, 0 if not written
    bool checkpoint = false;
    void finish(std::uint64_t seq) const {
      if (done) done(seq != 0);
      if (on_seq) on_seq(seq);
    }
  };
  void run();
  bool write_batch(std::deque<Pending>& batch);
  void rotate_locked_file();
  std::string render(const Pending& p, std::uint64_t seq, const std::string& prev);

  const std::filesystem::path file_;
  const std::uint64_t max_size_;
  int fd_ = -1;
  std::uint64_t size_ = 0;         // durable bytes in the current file
  std::uint64_t seq_ = 0;          // of the last durable line
  std::string prev_;               // hex SHA-256 of the last durable line
  std::uint64_t first_seq_ = 0;    // of the current file, for its name when rotated

  mutable std::mutex mutex_;
  std::condition_variable wake_, written_;
  std::deque<Pending> queue_;
  std::uint64_t appended_ = 0, finished_ = 0;  // counts, for flush()
  bool all_written_ = true;
  bool rotate_requested_ = false;
  bool outage_recorded_ = false;  // writer thread only
  std::size_t last_batch_ = 0;    // writer thread only
  bool stopping_ = false;
  std::string failure_;
  std::optional<CheckpointSigner> signer_;
  std::thread thread_;
};

}  // namespace hsmsignd::audit
