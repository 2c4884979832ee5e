// SqliteStore: the default Store, one SQLite file in WAL mode and its inbox file.
//
// Tables (see sqlite_schema.hpp): sessions (latest record per session), updates
// (every distinct seq of every session: the chain bytes are attributed from),
// dims_a / dims_b (distinct combinations of each rollup family's dimensions),
// rollup_<family>_m / _h / _d (additive counters per minute / hour / day and
// combination), inbox_damaged (inbox rows that could not be decoded), meta.
//
// Inbox. Ingest makes a batch durable in two steps:
//  1. Acknowledge: the batch's new records (decided by Admission, which also counts
//     the duplicates) are written as one row of the inbox file (inbox_file.hpp), with
//     the batch's Idempotency-Key, in a transaction shared by every batch that arrived
//     meanwhile (group commit: one fsync), each batch in its own SAVEPOINT so a failing
//     one is rolled back alone.
//  2. Apply: the inbox is applied to sessions, chains and rollups (apply_group.hpp)
//     in large transactions that also record the last row they applied. Every open
//     session reports about once a minute, so a transaction per batch rewrote nearly
//     every open session's row and rollup cells each time; applying ~25 000 records at
//     once writes each of them once. Each transaction is planned in memory (ApplyPlan,
//     apply_plan.hpp) and written and committed on the committer's thread
//     (plan_committer.hpp) while the next is planned. It runs on the applier thread when enough records
//     wait or a second has passed, before every report (reports read what was
//     acknowledged), and at open and close (a process killed with -9 leaves rows: they
//     are applied at the next open). A failure leaves the rows for the next try. The
//     records of the rows a group committed reach the applier in memory, decoded
//     (inbox_handoff.hpp); it reads the file for the others. A batch waits (up to
//     kHandoffWait) while the handoff holds what wakes the applier: ingest keeps its pace.
// The two files have a write lock each, so acknowledging goes on while the applier
// writes (on a 2-core machine that doubled ingest). The acknowledging thread holds
// inbox_mutex_, the applier apply_mutex_; the applier never takes inbox_mutex_ while it
// runs: the rows it applied are deleted by the next acknowledging transaction (and at
// close), which learns them from applied_inbox_id_. Queries use a pool of read-only
// connections, so they run while either commits (WAL); a session scan reads its slices
// in parallel on several of them that share one snapshot (snapshot_readers()).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "background_release.hpp"
#include "group_commit.hpp"
#include "inbox_handoff.hpp"
#include "sqlite_database.hpp"
#include "store.hpp"

namespace streamtally::collector {

struct ApplyPlan;
struct ApplyState;
struct SqliteWriter;
class Admission;
class InboxFile;
class PlanCommitter;

// Applying starts when this many acknowledged records wait, or after kApplyDelay.
inline constexpr int64_t kApplyRecords = 25'000;
inline constexpr auto kApplyDelay = std::chrono::seconds(1);
// At most about this many records in one apply transaction. When ingest outruns the
// applier, the backlog is applied in chunks this large: a session row, rollup cell or
// chain row then takes the updates of a longer stretch of time in one write (with
// 100 000 instead of 25 000, an apply costs ~25 % less a record). A decoded chunk is
// held in memory, ~1 KiB a record, until the plan after it is handed over (so up to two:
// the one being written and the one being planned), and so are up to as many records
// handed from acknowledging to the applier (inbox_handoff.hpp).
inline constexpr int64_t kApplyChunkRecords = 100'000;
// How long a batch waits for the applier to take the records handed to it, at most.
inline constexpr auto kHandoffWait = std::chrono::seconds(1);

class SqliteStore final : public Store {
 public:
  // options.scan_threads: how many slices a report's session scan reads in parallel,
  // each on a connection and thread of its own; 0: one per core, at most kMaxScanSlices.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, const StoreOptions& options = {});
  ~SqliteStore() override;

  Result<IngestOutcome> ingest(IngestBatch batch) override;
  Result<std::vector<GroupTotals>> events(const ReportQuery& query) override;
  Result<Timeseries> timeseries(const ReportQuery& query) override;
  Result<SessionsPage> sessions(const SessionsQuery& query) override;
  Result<StoreStats> stats() override;
  std::optional<std::string> ingest_refusal() const override;

  // Applies every inbox row now (reports do this first, so they see what was
  // acknowledged). Without `drain`, the last plan may still be committing on return.
  Status apply_inbox(bool drain = true);
  // Admission's session key filter holds every session the store held at open (it is
  // read on a thread of its own after open; inbox_admission.hpp).
  bool session_keys_loaded() const;

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

  // Pooled read-only connections that see one and the same snapshot of the store: each
  // began its read transaction while no apply could commit (snapshot_mutex_). For scans
  // read in parallel slices, one connection per slice (scan_slices_).
  class SnapshotReaders {
   public:
    ~SnapshotReaders();
    std::span<sqlite3* const> connections() const { return connections_; }

   private:
    friend class SqliteStore;
    std::vector<std::unique_ptr<ReadLease>> leases_;
    std::vector<sqlite3*> connections_;
  };
  static constexpr unsigned kMaxScanSlices = 4;
  Result<std::unique_ptr<SnapshotReaders>> snapshot_readers();

 private:
  SqliteStore(std::string path, const StoreOptions& options);
  Status init_writer();
  Status open_inbox();
  Status move_legacy_inbox();
  Status pack_update_chains(sqlite3* db);

  // Group commit (see ingest()): a group of batches into the inbox, one outcome each.
  std::vector<Result<IngestOutcome>> journal_group(std::span<IngestBatch* const> group);
  // A batch's new records are moved to `rows`, to be handed to the applier once the
  // group has committed.
  Result<IngestOutcome> journal_batch(IngestBatch& batch, int64_t& inbox_records,
                                      std::vector<InboxHandoff::Row>& rows);
  GroupCommit group_commit_;

  // The inbox applier (sqlite_inbox.cpp), with apply_mutex_ held.
  Status apply_inbox_locked(bool drain);
  Status plan_chunk(int64_t through);
  // The rows after planned_through_ for plan_chunk(), from the handoff or the file.
  struct Chunk;
  Result<Chunk> take_chunk(int64_t through);
  Status retire_in_flight();
  Status start_over(const Status& failure);
  // On the committer's thread.
  Status commit_plan(const ApplyPlan& plan);
  // Acknowledged records no plan holds yet: what wakes the applier.
  int64_t unplanned_records() const;
  // Before every report: apply what waits in the inbox, so a report sees every batch
  // acknowledged before it (read-your-writes). stats() tries it too, but answers even
  // while applying fails: /metrics must show the backlog then.
  Status apply_before_read() { return inbox_records_.load() > 0 ? apply_inbox() : Status::Ok(); }
  void applier_loop();
  // Outside acknowledging (open, close): deletes the inbox rows applies have committed.
  void delete_applied_inbox_rows();
  // Under inbox_mutex_, inside the inbox transaction when one is open: deletes the rows
  // up to applied_inbox_id_ not deleted yet; the id deleted through (0: nothing, or failed).
  int64_t delete_applied_rows_locked();

  Result<SqliteDb> acquire_reader();
  void release_reader(SqliteDb db);

  std::string path_;
  // Applying: planning (apply_state_, planned_through_) and handing plans to the
  // committer, the only user of writer_ after open.
  std::mutex apply_mutex_;
  std::unique_ptr<SqliteWriter> writer_;
  std::unique_ptr<ApplyState> apply_state_;
  std::unique_ptr<PlanCommitter> committer_;
  int64_t planned_through_ = 0;  // the last inbox row a plan holds
  bool reload_needed_ = false;   // apply_state_ could not start over after a failure
  std::atomic<int64_t> planned_records_{0};  // in plans not committed yet
  // meta.applied_inbox_id: written by the committer after its commit,
  // read by acknowledging to delete the rows and let admission forget them.
  std::atomic<int64_t> applied_inbox_id_{0};
  std::mutex inbox_mutex_;   // the inbox file's writer: acknowledging
  std::unique_ptr<InboxFile> inbox_;
  std::unique_ptr<InboxHandoff> handoff_;  // acknowledged records on their way to the applier
  BackgroundRelease release_;  // frees applied plans and chunks off the applier
  std::unique_ptr<Admission> admission_;  // under inbox_mutex_
  std::string inbox_row_;  // encoding buffer, reused under inbox_mutex_
  std::atomic<int64_t> inbox_records_{0};  // acknowledged, not applied
  int64_t inbox_deleted_through_ = 0;  // the last row deleted from the inbox file, under inbox_mutex_

  std::thread applier_;
  std::mutex applier_mutex_;
  std::condition_variable applier_wake_;
  bool stopping_ = false;
  std::mutex readers_mutex_;
  std::vector<SqliteDb> readers_;
  // Held exclusively around an apply's COMMIT, shared while SnapshotReaders begin their
  // read transactions: they all begin between the same two commits.
  std::shared_mutex snapshot_mutex_;
  unsigned scan_slices_ = 1;
  int64_t max_inbox_records_ = 0;  // StoreOptions
  EnrichFn enrich_;                // StoreOptions: for inbox rows read back as gzip NDJSON
  // What wakes the applier before kApplyDelay: kApplyRecords, or a smaller backlog bound
  // (ingest would be refused until the delay is over).
  int64_t apply_records_ = kApplyRecords;
  std::atomic<int64_t> max_session_ms_{0};  // longest session seen: bounds range scans

  friend class ReadLease;
};

}  // namespace streamtally::collector
