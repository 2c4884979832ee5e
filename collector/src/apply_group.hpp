// One transaction of the inbox applier (sqlite_store.hpp, "Inbox"), planned: records
// that ingest acknowledged are applied, in memory, to the cached sessions, their update
// chains and the rollup deltas, and become an ApplyPlan (apply_plan.hpp) that another
// thread writes. Nothing is written per record: a session updated many times in one
// transaction gets one chain row and one row write (a new one is inserted then, with an
// id given here), and each rollup cell one upsert. A chain read (a late update further
// back than the session's recent points, a changed session) merges the session's
// points not committed yet: those of the plan being written and of this one.
//
// A failure anywhere abandons the transaction and whatever was planned on top of the
// store (ApplyState::reload()), so nothing here needs to undo a part of it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "apply_plan.hpp"
#include "apply_state.hpp"
#include "store.hpp"

namespace streamtally::collector {

class ApplyGroup {
 public:
  // in_flight: the plan being written, if any (made by the previous group).
  ApplyGroup(ApplyState& state, const ApplyPlan* in_flight, int64_t max_session_ms);

  // Applies a record; it must stay alive until the plan is written. False: a duplicate
  // (its seq is in the chain already), which changes nothing.
  Result<bool> add(const IngestRecord& in);

  // The plan of everything added: the rows and cells to write, in the order to write them.
  ApplyPlan seal();

 private:
  // Pointers, not iterators: they stay valid when the cache rehashes.
  using Entry = SessionCache::value_type*;
  FamilyIds dims_of(const IngestRecord& r);
  Result<Entry> find(const IngestRecord& in);
  Entry insert(const IngestRecord& in, const FamilyIds& ids);
  // The session's chain: its committed rows, and the points not committed yet.
  Result<std::vector<UpdatePoint>> chain_of(const StoredSession& s);
  // The session's row will hold this newest record; `recent` are the chain's points before it.
  void replace_row(StoredSession& s, const IngestRecord& in, const FamilyIds& ids, const RecentPoints& recent);

  ApplyState& state_;
  const ApplyPlan* in_flight_;
  ApplyPlan plan_;
  std::vector<Entry> touched_;    // cache entries of the group's sessions (repeats allowed)
  std::string dims_key_;  // dims_of()'s key buffer, reused
  std::string session_key_;  // find()'s (and insert()'s after it), likewise
};

}  // namespace streamtally::collector
