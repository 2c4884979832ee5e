#include "streamtally/spool_writer.hpp"

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
  queue_.push_back(std::move(record));
  ++enqueued_total_;
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

void SpoolWriter::write_queued() {
  std::deque<SessionRecord> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(queue_);
  }
  if (taken.empty()) return;
  std::vector<SessionRecord> batch(std::make_move_iterator(taken.begin()), std::make_move_iterator(taken.end()));
  auto result = spool_->append(batch);
  std::lock_guard lock(mutex_);
  if (!result) {
    // Keep them for the next tick, ahead of newer records.
    log(LogLevel::Warn, "spool append failed, will retry: " + result.error());
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    return;
  }
  spooled_.fetch_add(result->appended - std::min(result->appended, result->dropped), std::memory_order_relaxed);
  dropped_.fetch_add(result->dropped, std::memory_order_relaxed);
  written_total_ += batch.size();
  written_.notify_all();
  if (hooks_.on_appended) hooks_.on_appended(batch.size());
}

void SpoolWriter::run() {
  int64_t next_recovery = 0;  // at once: sessions of writers that died before we started
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, options_.tick, [&] { return stopping_ || flush_requested_; });
    const bool stopping = stopping_;
    flush_requested_ = false;
    lock.unlock();

    const int64_t now = now_ms();
    if (hooks_.on_tick) hooks_.on_tick(now);
    if (now >= next_recovery) {
      if (auto r = spool_->recover_dead_writers(); !r) log(LogLevel::Warn, "session recovery failed: " + r.error());
      next_recovery = now + options_.recovery_interval.count();
    }
    write_queued();

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
