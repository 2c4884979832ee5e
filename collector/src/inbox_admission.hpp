// Admission: whether a record arriving at ingest is new or a duplicate, decided when
// its batch is acknowledged, before the record is applied (sqlite_store.hpp, "Inbox").
//
// A record is a duplicate when its (server_id, session_id, seq) was seen before:
// either it was admitted into the inbox, or it is applied (its seq is in the session's
// update chain). Every applied record was admitted first, and every record goes
// through this one Admission, so what it remembers of a session — the seqs admitted
// since it read the session's row, and a bound at or below which the chain may hold
// others — answers most records without reading anything: an admitted seq is a
// duplicate, a seq above the bound and not admitted is new. That covers the next
// update (the common case) and updates arriving out of order (batches sent over
// several connections). Only a seq at or below the bound that was not admitted since
// (a re-send of something applied long ago) is looked up in the chain.
//
// Admission reads the store through its own read-only connection: the applier writes
// the store at the same time. An admitted seq is forgotten only once the transaction
// that applied its inbox row has committed (applied_through), so the chain lookup sees it.
// What a batch admitted is forgotten again when the batch or its group fails to commit.
//
// A session admission has not seen is looked up in the store only when the session key
// filter (session_key_filter.hpp) says the store may hold it: the first record of a new
// session reads nothing. The filter is loaded on a thread of its own once the store has
// applied its inbox at open (a cold 10M-session store takes ~20 s of reads); until it
// is complete every session admission has not seen is looked up.
#pragma once

#include <absl/container/node_hash_map.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "attribution.hpp"
#include "session_key_filter.hpp"
#include "sqlite_database.hpp"
#include "store.hpp"

namespace streamtally::collector {

class Admission {
 public:
  // Reads the store file at store_path (read-only).
  static Result<std::unique_ptr<Admission>> open(const std::string& store_path);

  // Starts reading the key of every session the store holds into the session key
  // filter. Only once nothing waits in the inbox (what waits is not in the store yet).
  void start_loading_session_keys(const std::string& store_path);
  bool session_keys_loaded() const { return keys_loaded_.load(std::memory_order_acquire); }
  ~Admission();

  struct Verdict {
    bool fresh = false;        // new (and from now on remembered); false: a duplicate
    bool new_session = false;  // the first record admitted of a session the store never held
  };
  Result<Verdict> admit(const SessionRecord& r);
  // The batch's records are in inbox row `row` (its transaction not committed yet).
  void admitted_into(int64_t row);

  // Undo points: a batch's savepoint, a group's transaction. A group's reads share one
  // read transaction of the store (one snapshot, begun at its first read, ended with the
  // group): a read transaction per lookup cost as much as the lookup.
  void begin_group();
  void begin_batch() { batch_mark_ = undo_.size(); }
  void undo_batch() { undo_to(batch_mark_); }
  void undo_group() { undo_to(group_mark_), end_reads(); }
  void group_committed() { undo_.clear(), group_mark_ = batch_mark_ = 0, end_reads(); }

  // The inbox rows up to and including `row` are applied and committed.
  void applied_through(int64_t row) { applied_through_ = row; }

 private:
  static constexpr int64_t kNoRow = INT64_MAX;  // admitted by the batch in progress
  // A session keeps its admitted seqs while it has few; at 2 * kKeepAdmitted, the
  // applied ones below its newest kKeepAdmitted are forgotten into the bound. Enough for
  // the updates of a session that batches in flight at once hold; small, as it is kept
  // for every session seen (up to kMaxCachedSessions).
  static constexpr std::size_t kKeepAdmitted = 4;
  struct Admitted {
    int64_t seq;
    int64_t row;  // inbox row, kNoRow until admitted_into()
  };
  struct Seen {
    int64_t session = 0;  // sessions.id; 0 when the store did not hold it when read
    // The chain holds no seq above this one that is not in `admitted`: the highest seq
    // applied when the row was read, raised by every applied seq forgotten since.
    int64_t look_up_through = INT64_MIN;
    std::vector<Admitted> admitted;  // by seq; every one not known to be applied
  };
  Admission() = default;
  Status look_up_session(const SessionRecord& r, Seen& seen);
  // Whether the chain holds a seq not admitted since the read; reads the row first
  // when the session was not in the store then.
  Status look_up_point(const SessionRecord& r, Seen& seen, bool& found);
  Status begin_reads();
  void end_reads();
  // Where seq is, or would be, in a session's admitted seqs.
  static std::vector<Admitted>::iterator position(std::vector<Admitted>& admitted, int64_t seq);
  bool all_applied(const Seen& seen) const;
  // Forgets applied seqs into look_up_through when the session holds many.
  void trim(Seen& seen) const;
  void undo_to(std::size_t mark);

  SqliteDb db_;
  bool reading_ = false;  // the group's read transaction is open
  Statement find_session_, read_chain_;
  std::vector<UpdatePoint> chain_;  // read_chain_'s buffer, reused
  // By session_key(), looked up from key_ (reused). Node-based: undo_ points into it.
  absl::node_hash_map<std::string, Seen> seen_;
  std::string key_;
  // Every session admitted, and once keys_loaded_, every session held. Admission adds
  // its keys from the start, so nothing applied after the loader's snapshot is missed.
  std::unique_ptr<SessionKeyFilter> filter_;
  std::atomic<bool> keys_loaded_{false}, stop_loading_{false};
  std::thread loader_;
  int64_t applied_through_ = 0;
  // What one admission did: added a seq to an entry (remove it), after inserting the
  // entry (then erase it). Pointers, not iterators: they stay valid when the map
  // rehashes. What reads and forgetting learned stays true, so it is not undone.
  struct Undo {
    absl::node_hash_map<std::string, Seen>::value_type* entry;
    bool inserted;
    int64_t seq;
  };
  std::vector<Undo> undo_;
  std::size_t group_mark_ = 0, batch_mark_ = 0;
};

}  // namespace streamtally::collector
