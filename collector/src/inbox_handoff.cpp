#include "inbox_handoff.hpp"

namespace streamtally::collector {

InboxHandoff::InboxHandoff(int64_t max_records, int64_t file_rows_through) : max_records_(max_records) {
  if (file_rows_through > 0) entries_.push_back({file_rows_through, false, {}});
}

void InboxHandoff::publish(std::vector<Row>&& rows) {
  std::lock_guard lock(mutex_);
  for (Row& row : rows) {
    const auto n = static_cast<int64_t>(row.records.size());
    const bool fits = held_records_ + n <= max_records_;
    if (fits) held_records_ += n;
    entries_.push_back({row.id, fits, fits ? std::move(row.records) : std::vector<IngestRecord>()});
  }
}

InboxHandoff::Chunk InboxHandoff::take(int64_t applied, int64_t through, int64_t max_records) {
  Chunk chunk;
  std::lock_guard lock(mutex_);
  drop_through(applied);  // applied from the file already (it was read past them)
  if (entries_.empty()) {
    // Rows committed whose group has not published them yet: the file has them.
    chunk.file_through = through;
    return chunk;
  }
  if (!entries_.front().held) {
    // The marked rows up to the next held one; the mark made at open covers every row
    // the last process left.
    chunk.file_through = std::min(through, entries_.front().id);
    for (const Entry& e : entries_) {
      if (e.held || e.id > through) break;
      chunk.file_through = e.id;
    }
    return chunk;
  }
  int64_t records = 0;
  while (!entries_.empty() && entries_.front().held && entries_.front().id <= through && records < max_records) {
    const auto n = static_cast<int64_t>(entries_.front().records.size());
    records += n, held_records_ -= n;
    chunk.held.push_back({entries_.front().id, std::move(entries_.front().records)});
    entries_.pop_front();
  }
  room_.notify_all();
  return chunk;
}

void InboxHandoff::not_applied(int64_t through) {
  std::lock_guard lock(mutex_);
  drop_through(through);
  entries_.push_front({through, false, {}});
  room_.notify_all();
}

bool InboxHandoff::wait_while_holding(int64_t records, std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return room_.wait_for(lock, limit, [&] { return held_records_ < records; });
}

void InboxHandoff::drop_through(int64_t id) {
  while (!entries_.empty() && entries_.front().id <= id) {
    held_records_ -= static_cast<int64_t>(entries_.front().records.size());
    entries_.pop_front();
  }
}

}  // namespace streamtally::collector
