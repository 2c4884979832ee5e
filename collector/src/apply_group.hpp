// One transaction of the inbox applier (sqlite_store.hpp, "Inbox"): records that
// ingest acknowledged are applied to the sessions, their update chains and the rollups.
//
// Per record only what must be decided then is written at once: the chain point of a
// late update (the chain detects duplicates and is what late updates are attributed
// from). The next update's point waits and is written with the session's other new
// points in one chain row (update_chain.hpp).
// The session's latest record and the rollup deltas are kept in memory and written by
// write(): a session updated many times in one transaction is written once (a new one
// is inserted then, with an id the writer chose), and so is each rollup cell.
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
  Result<Entry> find_or_insert(const IngestRecord& in, const FamilyIds& ids, bool& inserted);
  // The session's chain, with the points that wait inserted first.
  Result<std::vector<UpdatePoint>> chain_of(int64_t session);
  // The session's row will hold this newest record; `recent` are the chain's points before it.
  void replace_row(StoredSession& s, const IngestRecord& in, const FamilyIds& ids, const RecentPoints& recent);
  // Inserts the waiting chain points, one row per session, in key order (B-tree friendly).
  Status insert_points();

  SqliteWriter& w_;
  int64_t max_session_ms_;
  int64_t first_new_session_id_;  // the ids from here on are unused again when abandoned
  bool max_session_ms_grew_ = false;
  RollupDeltas deltas_;
  std::vector<std::pair<int64_t, UpdatePoint>> points_;  // (session, point) not inserted yet
  std::vector<Entry> touched_;    // cache entries of the group's sessions (repeats allowed)
  std::vector<std::pair<std::size_t, std::string>> new_dims_keys_;  // to forget when abandoned
  std::string dims_key_;  // dims_of()'s key buffer, reused
  std::string session_key_;  // find_or_insert()'s, likewise
  std::string chain_row_;  // write_chain_row()'s buffer, reused
};

}  // namespace streamtally::collector
