// SpoolWriter: the thread between the SessionTracker and the Spool. Hosts' threads
// only enqueue records (a mutex-guarded deque push); this thread appends them in one
// transaction at most `tick` after the first of them was queued, runs the periodic
// work (interim updates, recovery of dead writers' sessions) and tells the uploader
// that records arrived.
//
// It sleeps while there is nothing to do: until records arrive (the host's enqueue of
// a record into an empty queue wakes it, so a host pays one wake-up per batch at
// most), the next interim update falls due (on_tick says when), or the next recovery
// — never longer than max_sleep, so a wall clock that jumps back delays interims by
// that much at most.
//
// If the spool is unavailable (locked for longer than its busy timeout, disk
// trouble) records stay queued and are retried; beyond max_queued the oldest are
// dropped and counted — the host never blocks and memory stays bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "streamtally/record.hpp"

namespace streamtally {

class Spool;

class SpoolWriter {
 public:
  struct Options {
    std::chrono::milliseconds tick{200};  // how long records may wait to be batched
    std::chrono::milliseconds recovery_interval{30000};
    std::chrono::milliseconds max_sleep{10000};
    std::size_t max_queued = 200000;
  };
  struct Hooks {
    // Periodic work due at now_ms (e.g. emit interim updates); returns when it next
    // has work (ms since the epoch), INT64_MAX for never.
    std::function<int64_t(int64_t now_ms)> on_tick;
    std::function<void(std::size_t)> on_appended;  // e.g. wake the uploader
  };

  SpoolWriter(std::shared_ptr<Spool> spool, Options options, Hooks hooks);
  ~SpoolWriter();  // stop()

  void enqueue(SessionRecord&& record);
  // Waits until everything enqueued before this call is in the spool (or timeout).
  bool flush(std::chrono::milliseconds timeout);
  // Appends what is queued, then stops the thread.
  void stop();

  uint64_t records_spooled() const { return spooled_.load(std::memory_order_relaxed); }
  uint64_t records_dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool write_queued();  // true when a batch went to the spool

  std::shared_ptr<Spool> spool_;
  const Options options_;
  const Hooks hooks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::deque<SessionRecord> queue_;  // deque: dropping the oldest is O(1) on the host's thread
  uint64_t enqueued_total_ = 0;  // guarded by mutex_
  uint64_t written_total_ = 0;   // records that left the queue (spooled or dropped)
  bool stopping_ = false;
  bool flush_requested_ = false;
  bool records_arrived_ = false;  // the queue went from empty to not: batch from now
  std::chrono::steady_clock::time_point first_queued_at_{};
  std::atomic<uint64_t> spooled_{0};
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace streamtally
