// ApplyState: what the inbox applier knows of the store between its transactions, and
// its own read-only connection for what it does not know. Only the thread planning an
// apply uses it (under SqliteStore's apply_mutex_); plans are written on another thread
// (plan_committer.hpp), so this state runs ahead of the store by the plan being written:
//  - the ids of new sessions and dimension combinations are given here (max + 1 at
//    load), so a plan needs no write to learn them;
//  - the session cache holds that plan's sessions until it committed (forget_closed),
//    so the connection, which sees only what committed, is never asked for them;
//  - a chain read merges that plan's points (ApplyGroup::chain_of).
// After a failed transaction everything here starts over from the store (reload()).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <memory>
#include <string>

#include "apply_plan.hpp"
#include "session_cache.hpp"
#include "sqlite_database.hpp"
#include "sqlite_schema.hpp"

namespace streamtally::collector {

struct ApplyState {
  SqliteDb db;  // read-only
  Statement find_session, read_chain;
  std::array<absl::flat_hash_map<std::string, int64_t>, kFamilyCount> dims_ids;  // by dims key
  std::array<int64_t, kFamilyCount> next_dims_id{};
  SessionCache sessions;
  int64_t next_session_id = 1;
  int64_t next_plan = 1;

  static Result<std::unique_ptr<ApplyState>> open(const std::string& path);
  // Forgets every cached session and reads the ids to give next and the dimension
  // combinations from what the store committed; no plan may be in flight.
  Status reload();
  // After `plan` committed: the sessions it closed leave the cache (late updates are
  // rare and find their row), unless a later plan touched them.
  void forget_closed(const ApplyPlan& plan);
};

// The cache key of a combination of a family's dimension values: length-prefixed,
// so no value can run into the next.
void append_dims_key_part(std::string& key, std::string_view value);

}  // namespace streamtally::collector
