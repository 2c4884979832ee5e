// Admission: whether a record arriving at ingest is new or a duplicate, decided when
// its batch is acknowledged, before the record is applied (sqlite_store.hpp, "Inbox").
//
// A record is a duplicate when its (server_id, session_id, seq) was seen before:
// either it waits in the inbox (remembered here since it was admitted) or it is
// applied (its seq is in the session's update chain). Most records are the next
// update of a session: their seq is above the highest applied one, which the writer's
// session cache or one indexed read of the session row tells, so the chain is read
// only for a seq at or below it (a re-send or a late update).
//
// What the inbox holds is remembered until the inbox has been applied; what a batch
// admitted is forgotten again when the batch or its whole group fails to commit.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "sqlite_writer.hpp"
#include "store.hpp"

namespace streamtally::collector {

class Admission {
 public:
  explicit Admission(SqliteWriter& w) : w_(w) {}

  // True when the record is new (and from now on remembered), false for a duplicate.
  // Uses the writer's connection, inside its transaction.
  Result<bool> admit(const SessionRecord& r);

  // Undo points: a batch's savepoint, a group's transaction.
  void begin_group() { group_mark_ = undo_.size(); }
  void begin_batch() { batch_mark_ = undo_.size(); }
  void undo_batch() { undo_to(batch_mark_); }
  void undo_group() { undo_to(group_mark_); }
  void group_committed() { undo_.clear(), group_mark_ = batch_mark_ = 0; }

  // The inbox was applied: its records are in the tables now. Whatever stays in the
  // inbox (a row that failed to apply) must be remembered again by the caller.
  void forget_all() { pending_.clear(), undo_.clear(), group_mark_ = batch_mark_ = 0; }

 private:
  struct Seen {
    int64_t session = 0;                  // sessions.id; 0 when the session is not applied yet
    int64_t applied_max_seq = INT64_MIN;  // highest seq in its applied chain
    std::vector<int64_t> inbox_seqs;      // seqs admitted since the inbox was last applied
  };
  Result<Seen> applied_state(const SessionRecord& r, const std::string& key);
  void undo_to(std::size_t mark);

  SqliteWriter& w_;
  std::unordered_map<std::string, Seen> pending_;  // by session_key()
  // What one admission did: added a seq to an entry (pop it), after inserting the entry
  // (then erase it). Pointers, not iterators: they stay valid when the map rehashes.
  struct Undo {
    std::unordered_map<std::string, Seen>::value_type* entry;
    bool inserted;
  };
  std::vector<Undo> undo_;
  std::size_t group_mark_ = 0, batch_mark_ = 0;
};

}  // namespace streamtally::collector
