// The SQLite store's schema (created on first open, idempotent).
#pragma once

#include <array>
#include <cstddef>
#include <iterator>
#include <string>

namespace streamtally::collector {

// Version 4: update chains packed a row per session and apply; 3: the inbox in a file of
// its own; 2: the inbox in the store's file. Opening an older store upgrades it.
inline constexpr int kSchemaVersion = 4;

inline constexpr const char* kSqliteSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('max_session_ms', 0), ('applied_inbox_id', 0);

-- Distinct combinations of each rollup family's dimensions (see kRollupFamilies).
CREATE TABLE IF NOT EXISTS dims_a(
  id INTEGER PRIMARY KEY,
  stream TEXT NOT NULL, server TEXT NOT NULL, host TEXT NOT NULL, type TEXT NOT NULL, protocol TEXT NOT NULL,
  UNIQUE(stream, server, host, type, protocol));
CREATE TABLE IF NOT EXISTS dims_b(
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL, country TEXT NOT NULL, device_type TEXT NOT NULL, os TEXT NOT NULL, browser TEXT NOT NULL,
  UNIQUE(type, country, device_type, os, browser));

-- The latest record (highest seq) of every session, plus what ingest derived.
CREATE TABLE IF NOT EXISTS sessions(
  id INTEGER PRIMARY KEY,
  server_id TEXT NOT NULL, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
  state TEXT NOT NULL, type TEXT NOT NULL, protocol TEXT NOT NULL, stream TEXT NOT NULL,
  host TEXT NOT NULL, client_ip TEXT NOT NULL, user_agent TEXT NOT NULL, referer TEXT NOT NULL,
  referer_domain TEXT NOT NULL, user_id TEXT, token TEXT,
  started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, ended_at INTEGER,
  last_t INTEGER NOT NULL,  -- ended_at or updated_at of the latest record
  end_t INTEGER NOT NULL,   -- max(started_at, last_t): the last instant the session was open
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, end_reason TEXT, tags TEXT,
  country TEXT NOT NULL, device_type TEXT NOT NULL, os TEXT NOT NULL, browser TEXT NOT NULL,
  dims_a INTEGER NOT NULL, dims_b INTEGER NOT NULL,
  UNIQUE(server_id, session_id));
-- Covers the session scan of ccu / sessions metrics (no row lookups).
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(started_at, end_t, type);

-- updates: kUpdatesTableSql below.

-- The rollup tables (rollup_<family>_<level>) are made by sqlite_schema() below.

-- Rows of the inbox file (inbox_file.hpp) that could not be decoded, with the reason:
-- moved here by the transaction that applies their neighbours, so a damaged row never
-- blocks the others and is never lost.
CREATE TABLE IF NOT EXISTS inbox_damaged(
  id INTEGER PRIMARY KEY, body BLOB NOT NULL, error TEXT NOT NULL, moved_at INTEGER NOT NULL);
)sql";

// Every distinct seq of every session: byte deltas are attributed from this chain. A row
// holds the points one apply added, from its first seq on (update_chain.hpp). Stores of
// schema_version 3 and before had a row per point; opening one packs them.
inline constexpr const char* kUpdatesTableSql = R"sql(
CREATE TABLE IF NOT EXISTS updates(
  session INTEGER NOT NULL, seq INTEGER NOT NULL, points BLOB NOT NULL,
  PRIMARY KEY(session, seq)) WITHOUT ROWID;
)sql";

// The three rollup levels, finest first.
inline constexpr long long kRollupLevelMs[] = {60'000, 3'600'000, 86'400'000};
inline constexpr std::size_t kRollupLevelCount = std::size(kRollupLevelMs);

// Rollup families: each keeps its own small set of dimensions, so the number of
// combinations (and of rollup rows per bucket) stays low. A report is answered from
// a family holding all its dimensions and filters, otherwise by the session scan.
struct RollupFamily {
  const char* dims_table;
  std::array<const char*, 5> dimensions;  // also the dims table's column names
  std::array<const char*, kRollupLevelCount> tables;
};
inline constexpr RollupFamily kRollupFamilies[] = {
    {"dims_a", {"stream", "server", "host", "type", "protocol"}, {"rollup_a_m", "rollup_a_h", "rollup_a_d"}},
    {"dims_b", {"type", "country", "device_type", "os", "browser"}, {"rollup_b_m", "rollup_b_h", "rollup_b_d"}},
};
inline constexpr std::size_t kFamilyCount = std::size(kRollupFamilies);

// The whole schema: kSqliteSchema, the schema_version of a new store, kUpdatesTableSql
// and one table of additive counters per rollup family and level (minute, hour, day),
// keyed by bucket and the family's dimension combination.
inline std::string sqlite_schema() {
  std::string sql = kSqliteSchema;
  sql += "INSERT OR IGNORE INTO meta VALUES ('schema_version', " + std::to_string(kSchemaVersion) + ");\n";
  sql += kUpdatesTableSql;
  for (const RollupFamily& family : kRollupFamilies)
    for (const char* table : family.tables)
      sql += std::string("CREATE TABLE IF NOT EXISTS ") + table +
             "(bucket INTEGER NOT NULL, dims INTEGER NOT NULL, starts INTEGER NOT NULL, views INTEGER NOT NULL, "
             "ends INTEGER NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, "
             "viewtime_ms INTEGER NOT NULL, PRIMARY KEY(bucket, dims)) WITHOUT ROWID;\n";
  return sql;
}

}  // namespace streamtally::collector
