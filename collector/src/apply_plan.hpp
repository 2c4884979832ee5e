// ApplyPlan: everything one apply transaction writes to the store, decided in memory
// by ApplyGroup (apply_group.hpp) and written by SqliteWriter::write() (sqlite_writer.hpp)
// on the writer's thread (plan_committer.hpp). The two are separate so that the next
// transaction is planned while this one is written and committed: on two cores the
// applier, which bounds ingest until applied, was half planning, half writing.
//
// A plan refers to records of its chunk by pointer: the chunk must outlive the write.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rollup_deltas.hpp"
#include "session_cache.hpp"

namespace streamtally::collector {

struct ApplyPlan {
  // A session's row and its new chain points.
  struct SessionWrite {
    int64_t id = 0;
    FamilyIds dims{};
    PendingRow row;  // points in seq order
  };
  // A combination of a family's dimension values first seen here, with the id given it.
  struct NewDims {
    std::size_t family = 0;
    int64_t id = 0;
    std::array<std::string, 5> values;  // the family's dimensions, in their order
  };
  // An inbox row that could not be decoded: kept aside with the reason.
  struct DamagedRow {
    int64_t id = 0;
    std::string body, damage;
  };

  int64_t number = 0;  // plans are numbered in the order they are made (and committed)
  int64_t through = 0;  // the last inbox row it applies
  int64_t records = 0;  // how many records those rows hold, as counted when acknowledged
  std::vector<NewDims> new_dims;
  std::vector<SessionWrite> sessions;  // in id order (B-tree friendly), each once
  RollupDeltas deltas;
  int64_t max_session_ms = 0;  // the longest session seen, written when it grew
  std::vector<DamagedRow> damaged;
  // Sessions this plan closed: they leave the cache once it committed, unless a later
  // plan touched them (ApplyState::forget_closed).
  std::vector<SessionCache::value_type*> closed;
  std::shared_ptr<void> records_owner;  // the decoded chunk the rows point into

  // The points this plan adds to a session's chain (none: it does not touch it).
  const std::vector<UpdatePoint>* points_of(int64_t session) const {
    auto it = std::lower_bound(sessions.begin(), sessions.end(), session,
                               [](const SessionWrite& w, int64_t id) { return w.id < id; });
    return it != sessions.end() && it->id == session ? &it->row.points : nullptr;
  }
};

}  // namespace streamtally::collector
