// SessionTracker: the sessions a process has open, and the records they produce.
//
// open() emits seq 0, emit_due_interims() an update every `interim` per session
// with cumulative bytes, close() the final record with end_reason. Records go to
// the sink (the spool writer's queue), never to disk from the caller's thread.
//
// Thread-safety: all methods are thread-safe. Session::add_bytes is one relaxed
// atomic add per counter — the only call meant for media hot paths. close() is
// idempotent: hosts that signal a close twice (nginx-rtmp) get one final record.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "streamtally/record.hpp"

namespace streamtally {

struct SessionInfo {
  SessionType type = SessionType::Play;
  Protocol protocol = Protocol::Other;
  std::string stream;
  std::string client_ip;
  std::string user_agent;
  std::string referer;
  std::optional<std::string> user_id;
  std::optional<std::string> token;
  std::map<std::string, std::string> tags;
  int64_t started_at = 0;  // 0: now
};

class Session {
 public:
  void add_bytes(uint64_t in, uint64_t out) noexcept {
    if (in) bytes_in_.fetch_add(in, std::memory_order_relaxed);
    if (out) bytes_out_.fetch_add(out, std::memory_order_relaxed);
  }
  // For cumulative counters read from the host: only ever raises the totals.
  void set_totals(uint64_t in, uint64_t out) noexcept;
  const std::string& id() const { return record_.session_id; }
  uint64_t bytes_in() const noexcept { return bytes_in_.load(std::memory_order_relaxed); }
  uint64_t bytes_out() const noexcept { return bytes_out_.load(std::memory_order_relaxed); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  friend class SessionTracker;
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<bool> closed_{false};
  // Guarded by the tracker's mutex:
  SessionRecord record_;  // identity fields and the last emitted seq
  int64_t next_interim_at_ = 0;
};

class SessionTracker {
 public:
  using Sink = std::function<void(SessionRecord&&)>;

  struct Options {
    std::string server_id;
    std::string host;
    std::chrono::milliseconds interim{60000};
  };

  SessionTracker(Options options, Sink sink);

  std::shared_ptr<Session> open(SessionInfo info);
  // Returns true when this call closed the session, false when it was already closed.
  bool close(const std::shared_ptr<Session>& session, EndReason reason, int64_t at_ms = 0);
  // Emits an interim update for every open session whose interim is due at now_ms,
  // or within a tenth of the interval (so updates go in batches); returns when the
  // next one falls due (ms since the epoch), INT64_MAX with none open.
  int64_t emit_due_interims(int64_t now_ms);
  void close_all(EndReason reason);
  std::size_t open_count() const;
  const Options& options() const { return options_; }

 private:
  SessionRecord snapshot(Session& s, int64_t at_ms);  // caller holds mutex_

  const Options options_;
  const Sink sink_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Session>> open_;
  // No open session's interim is due before this (a closed session may have set it
  // earlier: that costs one scan that emits nothing).
  int64_t earliest_interim_at_ = INT64_MAX;
};

}  // namespace streamtally
