// SqliteStore: the default Store, one SQLite file in WAL mode.
//
// Tables (see sqlite_schema.cpp): sessions (latest record per session), updates
// (every distinct seq of every session: the chain bytes are attributed from),
// dims_a / dims_b (distinct combinations of each rollup family's dimensions),
// rollup_<family>_m / _h / _d (additive counters per minute / hour / day and
// combination, kept in the ingest transaction), batches (Idempotency-Keys), meta.
//
// One writer connection does every ingest: batches that arrive together share one
// transaction (group commit: one fsync), each in its own SAVEPOINT (commit_group.hpp);
// queries use a pool of read-only connections, so they run while a batch commits (WAL).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sqlite_database.hpp"
#include "store.hpp"

namespace streamtally::collector {

struct SqliteWriter;

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);
  ~SqliteStore() override;

  Result<IngestOutcome> ingest(const IngestBatch& batch) override;
  Result<std::vector<GroupTotals>> events(const ReportQuery& query) override;
  Result<Timeseries> timeseries(const ReportQuery& query) override;
  Result<SessionsPage> sessions(const SessionsQuery& query) override;
  Result<StoreStats> stats() override;
  std::vector<std::string> session_columns(SessionGroup group) const override;

  // A pooled read-only connection, returned to the pool when the lease ends.
  class ReadLease {
   public:
    ReadLease(SqliteStore& store, SqliteDb db) : store_(store), db_(std::move(db)) {}
    ~ReadLease() {
      if (db_) store_.release_reader(std::move(db_));
    }
    ReadLease(const ReadLease&) = delete;
    ReadLease& operator=(const ReadLease&) = delete;
    sqlite3* get() const { return db_.get(); }

   private:
    SqliteStore& store_;
    SqliteDb db_;
  };

 private:
  explicit SqliteStore(std::string path);
  Status init_writer();

  // Group commit (see ingest()): batches waiting for the writer.
  struct PendingBatch {
    const IngestBatch* batch = nullptr;
    Result<IngestOutcome> result = Error{"not run"};
    bool done = false;
  };
  void commit_group(std::vector<std::shared_ptr<PendingBatch>>& group);
  std::mutex queue_mutex_;
  std::condition_variable queue_done_;
  std::vector<std::shared_ptr<PendingBatch>> queue_;
  bool leader_active_ = false;

  Result<SqliteDb> acquire_reader();
  void release_reader(SqliteDb db);

  std::string path_;
  std::mutex writer_mutex_;
  std::unique_ptr<SqliteWriter> writer_;
  std::mutex readers_mutex_;
  std::vector<SqliteDb> readers_;
  std::atomic<int64_t> max_session_ms_{0};  // longest session seen: bounds range scans

  friend class ReadLease;
};

}  // namespace streamtally::collector
