// The ClickHouse store's tables (created at open when missing; see clickhouse_store.hpp).
// `{db}` stands for the database name, which parse_clickhouse_url() allows only
// letters, digits and _ in.
#pragma once

namespace streamtally::collector {

inline constexpr const char* kClickHouseSchema[] = {
    "CREATE DATABASE IF NOT EXISTS {db}",
    // Every distinct update of every session, with what ingest derived. t is ended_at or
    // updated_at; tags both as the JSON the API returns and as arrays for tag.<key>.
    // JSONEachRow does not fill DEFAULTs on 18.16: inserts send every column.
    R"sql(CREATE TABLE IF NOT EXISTS {db}.updates (
  server_id String, session_id String, seq Int64,
  state String, type String, protocol String, stream String, host String,
  client_ip String, user_agent String, referer String, referer_domain String,
  user_id Nullable(String), token Nullable(String),
  started_at Int64, updated_at Int64, ended_at Nullable(Int64), t Int64,
  bytes_in Int64, bytes_out Int64, end_reason Nullable(String),
  tags String, tag_keys Array(String), tag_values Array(String),
  country String, device_type String, os String, browser String
) ENGINE = ReplacingMergeTree ORDER BY (started_at, server_id, session_id, seq))sql",
    "CREATE TABLE IF NOT EXISTS {db}.batches (key String, at DateTime) "
    "ENGINE = ReplacingMergeTree ORDER BY key",
    "CREATE TABLE IF NOT EXISTS {db}.bounds (max_session_ms Int64, at DateTime) "
    "ENGINE = MergeTree ORDER BY max_session_ms",
};

}  // namespace streamtally::collector
