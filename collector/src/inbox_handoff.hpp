// InboxHandoff: the records of the inbox rows acknowledging just committed, handed to
// the applier in memory (sqlite_store.hpp, "Inbox"). Without it the applier read each
// row back from the inbox file and decoded it again, right after the acknowledging
// thread had decoded the same records from JSON and encoded them for the file.
//
// The inbox file stays the truth: a restart applies what it holds, and the applier
// reads it wherever the handoff holds no records. The handoff holds at most
// max_records records; a row committed while it is full, and the rows of an apply that
// failed (their records went with it), leave only a mark ("read from the file up to
// here"), so the handoff is, in id order, every row committed after the
// applied one: held, or marked. Rows are published in commit order, after their
// transaction committed; rows committed but not published yet come after all of them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "store.hpp"

namespace streamtally::collector {

class InboxHandoff {
 public:
  struct Row {
    int64_t id = 0;
    std::vector<IngestRecord> records;
  };

  // The file holds rows through `file_rows_through` that were never handed off.
  InboxHandoff(int64_t max_records, int64_t file_rows_through);

  // Acknowledging: rows that just committed, in id order (under the inbox lock, so one
  // group's rows come before the next group's).
  void publish(std::vector<Row>&& rows);

  // The applier, for the rows after `applied` up to and including `through`: either
  // `held` (the first of them, until they hold at least max_records records), or, when
  // the first is not held, none and `file_through`: read the file's rows up to there.
  struct Chunk {
    std::vector<Row> held;
    int64_t file_through = 0;
  };
  Chunk take(int64_t applied, int64_t through, int64_t max_records);
  // The applier: the apply of the rows up to `through` that take() answered failed, and
  // their records went with it; the next take() sends it to the file for them.
  void not_applied(int64_t through);

  // Acknowledging, before a batch: waits while `records` or more are held, until the
  // applier takes them or `limit` has passed. Ingest so keeps to the pace of the applier
  // rather than running ahead of it (into rows it must read back from the file, and a
  // backlog it applies alone after the last batch), and leaves it the CPU it needs; a
  // stalled applier slows ingest by `limit` a batch, never stops it. `records` must wake
  // the applier (SqliteStore passes what does). False when the limit passed first.
  bool wait_while_holding(int64_t records, std::chrono::milliseconds limit);

 private:
  struct Entry {
    int64_t id;
    bool held;  // false: a mark, the row is only in the file
    std::vector<IngestRecord> records;
  };
  // Under mutex_: forgets the entries up to and including `id`.
  void drop_through(int64_t id);

  std::mutex mutex_;
  std::condition_variable room_;  // signalled when held records are taken or dropped
  std::deque<Entry> entries_;  // in id order
  int64_t held_records_ = 0;
  const int64_t max_records_;
};

}  // namespace streamtally::collector
