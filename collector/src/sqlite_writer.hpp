// The store's writer connection: its prepared statements, the id caches of the
// rollup families' dimension combinations and the cache of open sessions. Only the
// thread that applies the inbox uses it (under SqliteStore's writer mutex).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <string>

#include "session_cache.hpp"
#include "sqlite_database.hpp"
#include "sqlite_schema.hpp"

namespace streamtally::collector {

struct SqliteWriter {
  SqliteDb db;
  Statement find_session, insert_session, update_session, update_session_fast, insert_update, read_chain, set_meta,
      keep_damaged;
  std::array<Statement, kFamilyCount> insert_dims;
  std::array<std::array<Statement, kRollupLevelCount>, kFamilyCount> upsert_rollup;
  std::array<absl::flat_hash_map<std::string, int64_t>, kFamilyCount> dims_ids;  // by dims key
  SessionCache sessions;
  // The id of the next new session: the writer chooses it (max(id) + 1 when prepared),
  // so a session new in an apply is inserted once, with its latest record, at the end.
  int64_t next_session_id = 1;

  // Prepares every statement and loads the dims id caches.
  Status prepare();
  // Resets every statement (after a failure left one mid-step).
  void reset_all();
};

// The cache key of a combination of a family's dimension values: length-prefixed,
// so no value can run into the next.
void append_dims_key_part(std::string& key, std::string_view value);

}  // namespace streamtally::collector
