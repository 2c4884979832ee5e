// The SQLite store's schema (created on first open, idempotent).
#pragma once

namespace streamtally::collector {

inline constexpr const char* kSqliteSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('schema_version', 1), ('max_session_ms', 0);

CREATE TABLE IF NOT EXISTS dimsets(
  id INTEGER PRIMARY KEY,
  stream TEXT NOT NULL, server TEXT NOT NULL, host TEXT NOT NULL, type TEXT NOT NULL,
  protocol TEXT NOT NULL, country TEXT NOT NULL, device_type TEXT NOT NULL, os TEXT NOT NULL,
  browser TEXT NOT NULL,
  UNIQUE(stream, server, host, type, protocol, country, device_type, os, browser));

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
  dimset INTEGER NOT NULL,
  UNIQUE(server_id, session_id));
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(started_at);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id, started_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_by_ip ON sessions(client_ip);

-- Every distinct seq of every session: byte deltas are attributed from this chain.
CREATE TABLE IF NOT EXISTS updates(
  session INTEGER NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL,
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,
  PRIMARY KEY(session, seq)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rollup_m(
  bucket INTEGER NOT NULL, dimset INTEGER NOT NULL,
  starts INTEGER NOT NULL, views INTEGER NOT NULL, ends INTEGER NOT NULL,
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, viewtime_ms INTEGER NOT NULL,
  PRIMARY KEY(bucket, dimset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_h(
  bucket INTEGER NOT NULL, dimset INTEGER NOT NULL,
  starts INTEGER NOT NULL, views INTEGER NOT NULL, ends INTEGER NOT NULL,
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, viewtime_ms INTEGER NOT NULL,
  PRIMARY KEY(bucket, dimset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_d(
  bucket INTEGER NOT NULL, dimset INTEGER NOT NULL,
  starts INTEGER NOT NULL, views INTEGER NOT NULL, ends INTEGER NOT NULL,
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, viewtime_ms INTEGER NOT NULL,
  PRIMARY KEY(bucket, dimset)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS batches(
  idempotency_key TEXT PRIMARY KEY, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
  received_at INTEGER NOT NULL) WITHOUT ROWID;
)sql";

// The three rollup levels, finest first: table name and bucket length.
struct RollupLevel {
  const char* table;
  long long bucket_ms;
};
inline constexpr RollupLevel kRollupLevels[] = {{"rollup_m", 60'000}, {"rollup_h", 3'600'000}, {"rollup_d", 86'400'000}};

}  // namespace streamtally::collector
