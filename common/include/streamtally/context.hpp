// Context: what a host process needs to account sessions — a SessionTracker whose
// records a writer thread appends to the Spool in batched transactions (and where it
// emits interim updates and recovers dead writers' sessions), plus an Uploader
// thread when a collector is configured.
//
// acquire() shares one Context per (spool path, collector URL) in a process, so many
// GStreamer elements or nginx modules in one process use one spool connection and
// one uploader; the first acquirer's settings win. Call it after fork().
// Thread-safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "streamtally/result.hpp"
#include "streamtally/session_tracker.hpp"

namespace streamtally {

class Spool;
class Uploader;

struct ContextConfig {
  std::string spool_path;
  std::string collector_url;  // empty: spool only
  std::string collector_token;
  std::string ca_file;
  std::string server_id;      // empty: the spool's generated id
  std::string host;           // empty: gethostname()
  std::chrono::milliseconds interim{60000};
  std::size_t batch_size = 500;
  std::chrono::milliseconds flush{5000};
  uint64_t spool_max_bytes = 1ull << 30;
};

struct ContextStats {
  uint64_t sessions_open = 0;
  uint64_t records_spooled = 0;
  uint64_t records_dropped = 0;
  uint64_t batches_sent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_retried = 0;
  uint64_t batches_dead_lettered = 0;
  uint64_t records_uploaded = 0;
  uint64_t bytes_uploaded = 0;
  uint64_t backlog_records = 0;
  int64_t oldest_pending_age_ms = -1;
};

class Context {
 public:
  static Result<std::shared_ptr<Context>> acquire(const ContextConfig& config);
  // Drops one user's reference. The last user (decided under the registry's lock, so no
  // acquire() can pick the context up meanwhile) shuts the context down: spools everything
  // and uploads what it can within the timeout. Other users return at once, having waited
  // (bounded by the timeout) for the spool write only when `spool_now` (e.g. a host that is
  // about to exit).
  static void release(std::shared_ptr<Context> context, std::chrono::milliseconds timeout, bool spool_now);
  ~Context();  // closes open sessions ("server"), flushes briefly, stops threads

  SessionTracker& tracker() { return *tracker_; }
  const std::string& server_id() const { return server_id_; }
  const ContextConfig& config() const { return config_; }

  // Spools everything tracked so far and, with a collector, uploads it.
  // False when that did not finish within the timeout (nothing is lost).
  bool flush(std::chrono::milliseconds timeout);
  // Spools everything tracked so far (local disk only, no network).
  bool flush_to_spool(std::chrono::milliseconds timeout);
  // Closes open sessions and flushes within the timeout (for host shutdown).
  void shutdown(std::chrono::milliseconds timeout);
  ContextStats stats();

  struct Impl;

 private:
  Context(ContextConfig config);
  Status start();

  ContextConfig config_;
  std::string registry_key_;
  std::string server_id_;
  std::unique_ptr<SessionTracker> tracker_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamtally
