#include "streamtally/spool_writer.hpp"

#include <algorithm>

#include "streamtally/clock.hpp"
#include "streamtally/log.hpp"
#include "streamtally/spool.hpp"

namespace streamtally {

SpoolWriter::SpoolWriter(std::shared_ptr<Spool> spool, Options options, Hooks hooks)
    : spool_(std::move(spool)), options_(options), hooks_(std::move(hooks)), thread_([this] { run(); }) {}

SpoolWriter::~SpoolWriter() { stop(); }

void SpoolWriter::enqueue(SessionRecord&& record) {
  std::lock_guard lock(mutex_);
  if (queue_.size() >= options_.max_queued) {
    // The spool has been unwritable for a long time: bound memory, count the loss.
    queue_.pop_front();
    ++written_total_;
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  const bool was_empty = queue_.empty();
  queue_.push_back(std::move(record));
  ++enqueued_total_;
  if (was_empty) {
    first_queued_at_ = std::chrono::steady_clock::now();
    records_arrived_ = true;
    wake_.notify_one();
  }
}

bool SpoolWriter::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const uint64_t target = enqueued_total_;
  flush_requested_ = true;
  wake_.notify_one();
  return written_.wait_for(lock, timeout, [&] { return written_total_ >= target; });
}

void SpoolWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool SpoolWriter::write_queued() {
  std::deque<SessionRecord> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(queue_);
  }
  if (taken.empty()) return false;
  std::vector<SessionRecord> batch(std::make_move_iterator(taken.begin()), std::make_move_iterator(taken.end()));
  auto result = spool_->append(batch);
  std::lock_guard lock(mutex_);
  if (!result) {
    // Keep them for the next tick, ahead of newer records.
    log(LogLevel::Warn, "spool append failed, will retry: " + result.error());
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    first_queued_at_ = std::chrono::steady_clock::now();  // retried after one more tick
    return false;
  }
  spooled_.fetch_add(result->appended - std::min(result->appended, result->dropped), std::memory_order_relaxed);
  dropped_.fetch_add(result->dropped, std::memory_order_relaxed);
  written_total_ += batch.size();
  written_.notify_all();
  if (hooks_.on_appended) hooks_.on_appended(batch.size());
  return true;
}

void SpoolWriter::run() {
  using Clock = std::chrono::steady_clock;
  int64_t next_recovery = 0;  // at once: sessions of writers that died before we started
  int64_t next_due = 0;       // on_tick at once
  std::unique_lock lock(mutex_);
  for (;;) {
    // Sleep until the queued records' batch is due, the periodic work is, or a stop,
    // a flush or the first record of a new batch comes.
    const int64_t wall_now = now_ms();
    auto until = Clock::now() + std::chrono::milliseconds(
                                    std::clamp<int64_t>(std::min(next_due, next_recovery) - wall_now, 0,
                                                        options_.max_sleep.count()));
    for (;;) {
      if (!queue_.empty()) until = std::min(until, first_queued_at_ + options_.tick);
      records_arrived_ = false;
      const bool woken =
          wake_.wait_until(lock, until, [&] { return stopping_ || flush_requested_ || records_arrived_; });
      if (!woken || stopping_ || flush_requested_) break;
      // The first record of a batch came: sleep on until its tick (or earlier work).
    }
    const bool stopping = stopping_;
    flush_requested_ = false;
    lock.unlock();

    const int64_t now = now_ms();
    if (now >= next_due) next_due = hooks_.on_tick ? hooks_.on_tick(now) : INT64_MAX;  // records join this batch
    if (now >= next_recovery) {
      if (auto r = spool_->recover_dead_writers(); !r) log(LogLevel::Warn, "session recovery failed: " + r.error());
      next_recovery = now + options_.recovery_interval.count();
    }
    // A batch may hold a session that just opened, whose interim is due before what
    // on_tick said last: ask again.
    if (write_queued() && hooks_.on_tick) next_due = hooks_.on_tick(now_ms());

    lock.lock();
    if (stopping && queue_.empty()) break;
    if (stopping) {
      // The spool refused the last records: one more try, then give up on them.
      lock.unlock();
      write_queued();
      lock.lock();
      const uint64_t lost = queue_.size();
      if (lost) {
        dropped_.fetch_add(lost, std::memory_order_relaxed);
        written_total_ += lost;
        queue_.clear();
        log(LogLevel::Error, "stopping with an unwritable spool: " + std::to_string(lost) + " records lost");
      }
      break;
    }
  }
  written_.notify_all();
}

}  // namespace streamtally
