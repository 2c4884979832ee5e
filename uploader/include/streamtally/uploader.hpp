// Uploader: ships the spool's records to the collector — at-least-once, idempotent.
//
// Runs on its own thread. Claims batches from the spool (batch_size records, or
// whatever accumulated after flush_interval), POSTs them gzip'ed NDJSON to
// <collector_url>/v1/batches with the batch id as Idempotency-Key (the same on every
// retry), and acks only on 200. 400 -> dead letters; 401/403 -> logged, backoff;
// 413 -> the batch is split; 429/5xx/timeouts/refused -> exponential backoff with
// full jitter, honouring Retry-After. Never touches the host's media path.
//
// Thread-safety: all public methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace streamtally {

class Spool;

struct UploaderOptions {
  std::string collector_url;  // base URL: batches go to <collector_url>/v1/batches
  std::string token;          // ingest token (Authorization: Bearer)
  std::string ca_file;        // https CA bundle; empty: system default
  std::size_t batch_size = 500;
  // POSTs on the way at once, one kept-alive connection each: with 2 the collector works
  // on one batch while the next is sent and the uploader prepares a third.
  std::size_t max_in_flight = 2;
  std::chrono::milliseconds flush_interval{5000};
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{300000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds lease{120000};
};

struct UploaderCounters {
  uint64_t batches_sent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_retried = 0;
  uint64_t batches_dead_lettered = 0;
  uint64_t records_uploaded = 0;
  uint64_t bytes_uploaded = 0;  // request bodies on the wire (compressed)
};

class Uploader {
 public:
  Uploader(std::shared_ptr<Spool> spool, UploaderOptions options);
  ~Uploader();  // stop(0)
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  void start();
  // Uploads what it can within flush_timeout, then stops the thread. Whatever was
  // not acknowledged stays in the spool for the next start.
  void stop(std::chrono::milliseconds flush_timeout);
  // Wakes the thread now (records were appended, or a flush was requested).
  void nudge();
  // Blocks until the spool has nothing pending that this uploader can send, or the
  // timeout passes (false). Does not bypass an active backoff.
  bool drain(std::chrono::milliseconds timeout);
  UploaderCounters counters() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamtally
