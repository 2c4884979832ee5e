// Spool: the edge's durable buffer of session records — one SQLite file in WAL mode
// shared by every process and thread on the edge (all nginx workers, any number of
// GStreamer pipelines).
//
// One row per session holds its latest update and how far the collector has it: the row
// is pending while its seq is beyond what was acknowledged. A newer update replaces an
// unsent older one in place (coalescing), so an outage of hours keeps one row per session.
// claim() leases a batch of pending rows (BEGIN IMMEDIATE, so two uploaders never hold the
// same row; a lease whose owner died expires), ack() marks the sent seq delivered (closed
// sessions then leave the file in bulk, see sweep_delivered()), release() returns the batch, dead_letter() keeps a batch
// the collector refused as malformed aside. Size-capped: when full, rows of open sessions
// the collector already has go first (only their crash recovery is lost), then dead
// letters, then the oldest pending sessions — counted exactly in `dropped_records`.
//
// Crash safety: the row of an open session is its last saved update; recover_dead_writers()
// closes the open sessions of writers (pid + process start time) that died, from that row,
// with end_reason "recovered". A corrupt file is moved aside to PATH.corrupt-<timestamp>
// and a fresh spool started, with a log line.
//
// Thread-safety: one Spool object may be used from several threads (an internal mutex
// serializes them); every process opens its own. No method throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamtally/record.hpp"
#include "streamtally/result.hpp"

struct sqlite3;

namespace streamtally {

struct SpoolOptions {
  std::string path;
  uint64_t max_bytes = 1ull << 30;
  std::chrono::milliseconds busy_timeout{10000};
};

struct SpoolStats {
  uint64_t pending = 0;       // sessions with an update the collector has not acknowledged
  uint64_t claimed = 0;       // of which leased to a live uploader right now
  uint64_t dead_letters = 0;
  uint64_t dropped_records = 0;
  uint64_t dropped_bytes = 0;
  std::optional<int64_t> oldest_pending_ms;  // since when the longest-waiting session is pending
  uint64_t bytes = 0;         // space the spool's data uses
  uint64_t open_sessions = 0; // sessions whose last saved update is open (recoverable)
};

struct ClaimedBatch {
  std::string batch_id;  // stable across retries: the Idempotency-Key
  // The records as NDJSON, each line followed by '\n': the request body before gzip, read
  // in one buffer (no allocation per record, nothing to join). A vector, so a moved batch
  // keeps its buffer and `lines` stay valid; hence batches are move-only.
  std::vector<char> ndjson;
  std::vector<std::string_view> lines;  // each record's line in ndjson, without its newline
  int64_t oldest_created_ms = 0;

  ClaimedBatch() = default;
  ClaimedBatch(ClaimedBatch&&) = default;
  ClaimedBatch& operator=(ClaimedBatch&&) = default;
  ClaimedBatch(const ClaimedBatch&) = delete;
  ClaimedBatch& operator=(const ClaimedBatch&) = delete;
  std::string_view body() const { return {ndjson.data(), ndjson.size()}; }
};

struct DeadLetter {
  int64_t id = 0;
  std::string batch_id;
  std::string reason;
  int http_status = 0;
  int64_t created_ms = 0;
  std::string line;
};

struct AppendResult {
  std::size_t appended = 0;
  std::size_t dropped = 0;  // records lost to the cap or a full disk, by this call
};

class Spool {
 public:
  static Result<std::unique_ptr<Spool>> open(SpoolOptions options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends records (and keeps the open-session snapshots for recovery) in one
  // transaction. When the cap is reached, evicts as described above; never blocks
  // longer than the busy timeout.
  Result<AppendResult> append(std::span<const SessionRecord> records);

  // Leases up to max_records of the oldest pending records not leased by anyone
  // else (or whose lease expired). std::nullopt: nothing to send.
  Result<std::optional<ClaimedBatch>> claim(std::size_t max_records, std::chrono::milliseconds lease);
  Status ack(const std::string& batch_id);
  Status release(const std::string& batch_id);
  // Keeps the batch's lines (what was sent) as dead letters and ends the batch.
  Status dead_letter(const ClaimedBatch& batch, const std::string& reason, int http_status);

  // Deletes up to max_rows closed sessions the collector has in full; returns how many.
  // Acks leave them for later when a backlog drains (a delete costs about what storing
  // did); the uploader calls this when the spool is drained, until it returns < max_rows.
  Result<std::size_t> sweep_delivered(std::size_t max_rows);

  Result<std::vector<DeadLetter>> dead_letters();
  Result<std::size_t> requeue_dead_letters();
  Result<std::size_t> purge_dead_letters();

  // Imports already-encoded records (NDJSON lines that decode_record accepts).
  Result<AppendResult> append_lines(std::span<const std::string> lines);
  Result<std::vector<std::string>> pending_lines();

  // Closes the open sessions of writers on this host whose process is gone.
  // Returns how many sessions were recovered.
  Result<std::size_t> recover_dead_writers();

  // The server id kept in the spool: generated (UUID) on the first open.
  const std::string& server_id() const { return server_id_; }
  const std::string& path() const { return options_.path; }
  Result<SpoolStats> stats();

  struct Impl;

 private:
  explicit Spool(SpoolOptions options);
  Status open_file();
  Status prepare();
  // Reopens when needed: after corruption was detected (the file is moved aside
  // first), or when another process moved the file away (the inode changed).
  Status ensure_open();
  Error handle_error(int rc, const char* what);  // notes corruption for ensure_open()
  Status finish_batch(const std::string& batch_id, bool delivered, const char* what);

  SpoolOptions options_;
  std::string server_id_;
  int64_t writer_id_ = 0;
  bool corrupt_ = false;
  std::mutex mutex_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamtally
