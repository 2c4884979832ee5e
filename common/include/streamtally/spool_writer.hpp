// SpoolWriter: the thread between the SessionTracker and the Spool. Hosts' threads
// only enqueue records (a mutex-guarded vector push); this thread appends them in one
// transaction per tick, runs the periodic work (interim updates, recovery of dead
// writers' sessions) and tells the uploader that records arrived.
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
    std::chrono::milliseconds tick{200};
    std::chrono::milliseconds recovery_interval{30000};
    std::size_t max_queued = 200000;
  };
  struct Hooks {
    std::function<void(int64_t now_ms)> on_tick;     // e.g. emit interim updates
    std::function<void(std::size_t)> on_appended;    // e.g. wake the uploader
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
  void write_queued();

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
  std::atomic<uint64_t> spooled_{0};
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace streamtally
