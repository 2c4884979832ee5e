// One transaction of the group commit: every batch that waited for the writer is
// ingested under its own SAVEPOINT (a failing batch leaves no trace and keeps its own
// verdict), then the rows and rollup cells all of them touched are written once.
//
// Per record only what must be decided then is written at once: the update chain
// point (it detects duplicates and is what late updates are attributed from) and the
// row of a new session (its id). The session's latest record and the rollup deltas
// are kept in memory and written by write(): a session updated by several batches of
// the group is written once, and so is each rollup cell.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "rollup_deltas.hpp"
#include "sqlite_writer.hpp"
#include "store.hpp"

namespace streamtally::collector {

class CommitGroup {
 public:
  // Inside an open transaction of w's connection.
  CommitGroup(SqliteWriter& w, int64_t max_session_ms) : w_(w), max_session_ms_(max_session_ms) {}

  // Ingests one batch; on failure its savepoint is rolled back and the caches are as
  // before it. The batch must stay alive until write() has run.
  Result<IngestOutcome> add(const IngestBatch& batch);

  // Writes the session rows and rollup cells of every batch that succeeded, and the
  // longest session seen when it grew. Then the caller commits.
  Status write();
  int64_t max_session_ms() const { return max_session_ms_; }

  // After COMMIT: closed sessions leave the cache (late updates are rare and find
  // their row), and the cache starts over when it grew too large.
  void committed();
  // After a failed transaction: forget everything it added to the caches.
  void abandoned();

 private:
  // Pointers, not iterators: they stay valid when the cache rehashes.
  using Entry = SessionCache::value_type*;
  Result<FamilyIds> dims_of(const IngestRecord& r);
  Result<Entry> find_or_insert(const IngestRecord& in, const FamilyIds& ids, bool& inserted);
  Result<std::vector<UpdatePoint>> read_chain(int64_t session);
  void rollback_batch();

  SqliteWriter& w_;
  int64_t max_session_ms_;
  bool max_session_ms_grew_ = false;
  RollupDeltas deltas_;           // of the batches that succeeded
  std::vector<Entry> touched_;    // cache entries of the group's sessions (repeats allowed)
  std::vector<std::pair<std::size_t, std::string>> new_dims_keys_;

  // Undo of the running batch.
  std::vector<std::pair<Entry, std::optional<StoredSession>>> undo_;  // nullopt: added by the batch
  std::size_t batch_dims_keys_ = 0, batch_touched_ = 0;
};

}  // namespace streamtally::collector
