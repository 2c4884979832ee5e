// What ingest knows of each open session without reading its row back: the
// committed state of the session's latest update (seq, time, bytes) and the fields
// that decide whether the next update is the common case (same start, type and
// dimensions). Most records are the next update of a session that is still open, so
// this turns a SELECT per record into a hash lookup.
//
// The cache holds what the applier planned (ApplyState, apply_state.hpp): committed, or
// in a plan being written. A miss falls back to the sessions table, so an entry leaves
// only once every plan that touched it committed; a failed transaction clears it.
#pragma once

#include <absl/container/node_hash_map.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recent_points.hpp"
#include "rollup_deltas.hpp"
#include "store.hpp"

namespace streamtally::collector {

// What an apply transaction has not written yet of a session: it writes each touched
// row once, with its latest record, and the session's new chain points as one row
// (apply_plan.hpp).
struct PendingRow {
  const IngestRecord* record = nullptr;  // none: the row keeps its record
  bool full = false;    // started_at, type or dimensions changed: every column is written
  bool insert = false;  // the session is new: its row is inserted
  std::vector<UpdatePoint> points;  // new in the chain, in the order applied
};

// The time of a record's chain point and of its row's last_t: ended_at, or updated_at.
inline int64_t point_time(const SessionRecord& r) { return r.ended_at ? *r.ended_at : r.updated_at; }

struct StoredSession {
  int64_t id = 0;          // sessions.id
  int64_t seq = 0;         // highest seq of the chain (the row's record)
  int64_t started_at = 0;  // of the row's record
  int64_t last_t = 0;      // ended_at or updated_at of the row's record
  int64_t bytes_in = 0, bytes_out = 0;
  FamilyIds dims{};
  bool play = false;
  bool closed = false;     // the row's record closed the session
  RecentPoints recent;     // the chain's points before the latest, as far as known
  PendingRow pending;      // set only while an apply transaction is planned
  int64_t last_plan = 0;   // the last ApplyPlan that touched the session
};

// Keyed by session_key(). Node-based: references stay valid while others are added.
// Looked up with a key built in a reused buffer: no string allocated a record.
using SessionCache = absl::node_hash_map<std::string, StoredSession>;

// Length-prefixed, so no server_id can run into the session_id. Into `out`, replacing
// what it held: the per-record lookups reuse one buffer.
inline void session_key(std::string_view server_id, std::string_view session_id, std::string& out) {
  char length[24];
  const auto end = std::to_chars(length, length + sizeof length, server_id.size()).ptr;
  out.assign(length, end);
  out.push_back(':');
  out.append(server_id).append(session_id);
}
inline std::string session_key(std::string_view server_id, std::string_view session_id) {
  std::string k;
  session_key(server_id, session_id, k);
  return k;
}

// More open sessions than this at once and the cache starts over (memory bound:
// ~150 bytes an entry); a miss costs one indexed SELECT.
inline constexpr std::size_t kMaxCachedSessions = 2'000'000;

}  // namespace streamtally::collector
