// One transaction of the inbox applier (sqlite_store.hpp, "Inbox"): records that
// ingest acknowledged are applied to the sessions, their update chains and the rollups.
//
// Nothing is written per record: the session's new chain points (update_chain.hpp), its
// latest record and the rollup deltas are kept in memory and written by write(): a
// session updated many times in one transaction gets one chain row and one row write (a
// new one is inserted then, with an id the writer chose), and each rollup cell one
// upsert. A chain read (a late update further back than the session's recent points, a
// changed session) merges the session's points not written yet.
//
// A failure anywhere abandons the whole transaction (the inbox rows stay for the next
// try), so nothing here needs to undo a part of it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "rollup_deltas.hpp"
#include "sqlite_writer.hpp"
#include "store.hpp"

namespace streamtally::collector {

class ApplyGroup {
 public:
  // Inside an open transaction of w's connection.
  ApplyGroup(SqliteWriter& w, int64_t max_session_ms)
      : w_(w), max_session_ms_(max_session_ms), first_new_session_id_(w.next_session_id) {}

  // Applies a record; it must stay alive until write() has run. False: a duplicate
  // (its seq is in the chain already), which changes nothing.
  Result<bool> add(const IngestRecord& in);

  // Writes the session rows and rollup cells the records touched, and the longest
  // session seen when it grew. Then the caller commits.
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
  Result<Entry> find(const IngestRecord& in);
  Entry insert(const IngestRecord& in, const FamilyIds& ids);
  // The session's chain: its rows, and the points this transaction has not written yet.
  Result<std::vector<UpdatePoint>> chain_of(const StoredSession& s);
  // The session's row will hold this newest record; `recent` are the chain's points before it.
  void replace_row(StoredSession& s, const IngestRecord& in, const FamilyIds& ids, const RecentPoints& recent);

  SqliteWriter& w_;
  int64_t max_session_ms_;
  int64_t first_new_session_id_;  // the ids from here on are unused again when abandoned
  bool max_session_ms_grew_ = false;
  RollupDeltas deltas_;
  std::vector<Entry> touched_;    // cache entries of the group's sessions (repeats allowed)
  std::vector<std::pair<std::size_t, std::string>> new_dims_keys_;  // to forget when abandoned
  std::string dims_key_;  // dims_of()'s key buffer, reused
  std::string session_key_;  // find()'s (and insert()'s after it), likewise
  std::string chain_row_;  // write_chain_row()'s buffer, reused
};

}  // namespace streamtally::collector
