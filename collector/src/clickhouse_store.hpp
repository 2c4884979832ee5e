// ClickHouseStore: the Store on a ClickHouse server (--store clickhouse://HOST:PORT/DB),
// for when one machine's SQLite is not enough: several collectors may write to one
// database and reports aggregate in ClickHouse.
//
// Tables (clickhouse_schema.hpp):
//  - updates: every distinct update of every session, with what ingest derived
//    (country, device, referer domain). ReplacingMergeTree ordered by (started_at,
//    server_id, session_id, seq): reports find the sessions of a range through the
//    primary key, and rows written twice (two collectors racing on one re-sent
//    record) collapse at merge time; reports never count them twice anyway.
//  - batches: the Idempotency-Keys seen.
//  - bounds: the longest session seen, so a report knows how far before its range
//    a session that is still open in it may have started.
//
// Nothing is derived at write time: the latest record of a session (highest seq), its
// chain of updates and every report are computed by the query, from the updates
// alone. So an INSERT is the whole write (one block: all or nothing), and answers
// are the same whatever the order, repetition or collector of arrival.
//
// Ingest (group commit: the batches that arrive while one group is written form the
// next): one query finds the group's keys seen before (replays), one which
// (server_id, session_id, seq) exist; the new updates go in one INSERT (JSONEachRow),
// then the keys. A crash between the two makes the retries find every record
// present: all duplicates, nothing counted twice. Durability is ClickHouse's: an INSERT is acknowledged when
// its part is written (use replicated tables for more).
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "clickhouse_client.hpp"
#include "group_commit.hpp"
#include "store.hpp"

namespace streamtally::collector {

class ClickHouseStore final : public Store {
 public:
  // Connects, creates the database and tables when missing, reads the session bound.
  static Result<std::unique_ptr<ClickHouseStore>> open(const ClickHouseAddress& address);

  Result<IngestOutcome> ingest(IngestBatch batch) override;
  Result<std::vector<GroupTotals>> events(const ReportQuery& query) override;
  Result<Timeseries> timeseries(const ReportQuery& query) override;
  Result<SessionsPage> sessions(const SessionsQuery& query) override;
  Result<StoreStats> stats() override;

 private:
  explicit ClickHouseStore(const ClickHouseAddress& address);
  std::string table(const char* name) const;  // `db`.name
  // The report engine shared by events (one bucket) and timeseries.
  struct Buckets {
    int64_t first, length, count;
  };
  Result<Timeseries> report(const ReportQuery& query, const Buckets& buckets, bool events);

  // The group commit's write: one outcome per batch, or why the whole group failed.
  Result<std::vector<IngestOutcome>> write_group(std::span<IngestBatch* const> group);

  ClickHouseClient client_;
  GroupCommit group_commit_;
  std::atomic<int64_t> max_session_ms_{0};  // what this collector wrote to bounds
};

}  // namespace streamtally::collector
