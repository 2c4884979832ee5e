#include "sqlite_store.hpp"

#include <algorithm>
#include <filesystem>

#include "apply_state.hpp"
#include "inbox_admission.hpp"
#include "inbox_file.hpp"
#include "plan_committer.hpp"
#include "sqlite_schema.hpp"
#include "sqlite_writer.hpp"
#include "update_chain.hpp"
#include "wal_write_buffer.hpp"

namespace streamtally::collector {

SqliteStore::SqliteStore(std::string path, const StoreOptions& options)
    : path_(std::move(path)),
      scan_slices_(options.scan_threads > 0 ? static_cast<unsigned>(options.scan_threads)
                                            : std::clamp(std::thread::hardware_concurrency(), 1u, kMaxScanSlices)),
      max_inbox_records_(options.max_inbox_records),
      enrich_(options.enrich),
      apply_records_(options.max_inbox_records > 0 ? std::min(kApplyRecords, options.max_inbox_records)
                                                   : kApplyRecords) {}
SqliteStore::~SqliteStore() {
  if (applier_.joinable()) {
    {
      std::lock_guard lock(applier_mutex_);
      stopping_ = true;
    }
    applier_wake_.notify_all();
    applier_.join();
  }
  // What waits is applied now, so the next open starts fast; on failure it waits in
  // the file and the next open applies it.
  if (committer_ && inbox_)  // both: open may have failed between them
    if (Status s = apply_inbox(); !s) std::fprintf(stderr, "streamtally-collector: %s\n", s.error().c_str());
  committer_.reset();  // its thread ends (nothing in hand after a drain) before writer_ goes
  if (inbox_) delete_applied_inbox_rows();
}

void SqliteStore::delete_applied_inbox_rows() {
  std::lock_guard lock(inbox_mutex_);
  if (const int64_t deleted = delete_applied_rows_locked()) inbox_deleted_through_ = deleted;
}

std::optional<std::string> SqliteStore::ingest_refusal() const {
  const int64_t waiting = inbox_records_.load();
  if (max_inbox_records_ <= 0 || waiting < max_inbox_records_) return std::nullopt;
  return "the collector is applying a backlog of " + std::to_string(waiting) + " records (max_inbox_records " +
         std::to_string(max_inbox_records_) + "); retry later";
}

bool SqliteStore::session_keys_loaded() const { return admission_->session_keys_loaded(); }

int64_t SqliteStore::delete_applied_rows_locked() {
  const int64_t applied = applied_inbox_id_.load();
  if (applied <= inbox_deleted_through_) return 0;
  if (Status s = inbox_->delete_through(applied); !s) {  // harmless: they are skipped, and tried again
    std::fprintf(stderr, "streamtally-collector: deleting applied inbox rows: %s\n", s.error().c_str());
    return 0;
  }
  return applied;
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, const StoreOptions& options) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, options));
  if (Status s = store->init_writer(); !s) return Error{s.error()};
  if (Status s = store->open_inbox(); !s) return Error{s.error()};
  // Every upgrade is done (each recognises the old layout by itself, so one cut short
  // is done again at the next open whatever the version says).
  Statement version(store->writer_->db.get(), "UPDATE meta SET value = ?1 WHERE key = 'schema_version' AND value < ?1");
  if (Status s = version.bind(1, int64_t{kSchemaVersion}).run_and_reset(); !s) return Error{path + ": " + s.error()};
  // Rows a previous process acknowledged but did not apply (killed, or a failed apply).
  if (Status s = store->apply_inbox(); !s) return Error{path + ": applying the inbox: " + s.error()};
  store->delete_applied_inbox_rows();
  store->admission_->start_loading_session_keys(path);
  store->applier_ = std::thread([s = store.get()] { s->applier_loop(); });
  return store;
}

Status SqliteStore::init_writer() {
  // The writer's WAL appends go out in one write per commit (wal_write_buffer.hpp).
  auto db = open_database(path_, false, wal_write_buffer_vfs());
  if (!db) return Error{db.error()};
  if (Status s = exec_sql_status(db->get(), sqlite_schema().c_str()); !s) return Error{path_ + ": " + s.error()};
  if (Status s = pack_update_chains(db->get()); !s) return s;
  // A commit rewrites the pages of every open session; checkpointing every 10000
  // frames (~40 MiB of WAL) instead of SQLite's 1000 copies each hot page into the
  // database once per many commits instead of once per one or two.
  if (Status s = exec_sql_status(db->get(), "PRAGMA wal_autocheckpoint=10000"); !s) return Error{path_ + ": " + s.error()};
  writer_ = std::make_unique<SqliteWriter>();
  writer_->db = std::move(*db);
  if (Status s = writer_->prepare(); !s) return s;
  auto state = ApplyState::open(path_);
  if (!state) return Error{state.error()};
  apply_state_ = std::move(*state);
  committer_ = std::make_unique<PlanCommitter>([this](const ApplyPlan& plan) { return commit_plan(plan); });
  Statement meta(writer_->db.get(), "SELECT key, value FROM meta WHERE key IN ('max_session_ms', 'applied_inbox_id')");
  Status st = meta.each_row([&](const Statement& q) {
    if (q.text_view(0) == "max_session_ms")
      max_session_ms_ = q.int64(1);
    else
      applied_inbox_id_ = q.int64(1);
  });
  if (!st) return Error{path_ + ": " + st.error()};
  planned_through_ = applied_inbox_id_;
  return Status::Ok();
}

Status SqliteStore::open_inbox() {
  auto inbox = InboxFile::open(path_ + "-inbox");
  if (!inbox) return Error{inbox.error()};
  inbox_ = std::move(*inbox);
  if (Status s = move_legacy_inbox(); !s) return s;
  // Rows applied by the last process that it did not get to delete.
  if (Status s = inbox_->delete_through(applied_inbox_id_); !s) return s;
  inbox_deleted_through_ = applied_inbox_id_;
  auto waiting = inbox_->records_after(applied_inbox_id_);
  if (!waiting) return Error{waiting.error()};
  inbox_records_ = *waiting;
  // What waits now was written by an earlier process: the applier reads it from the file.
  auto last_row = inbox_->last_row();
  if (!last_row) return Error{last_row.error()};
  handoff_ = std::make_unique<InboxHandoff>(kApplyChunkRecords, *last_row);
  auto admission = Admission::open(path_);
  if (!admission) return Error{admission.error()};
  admission_ = std::move(*admission);
  admission_->applied_through(applied_inbox_id_);
  return Status::Ok();
}

// Stores of schema_version 3 and before kept a row per chain point: they become a row
// per session (update_chain.hpp), in one transaction, so an upgrade cut short leaves
// the old table as it was and the next open starts again.
Status SqliteStore::pack_update_chains(sqlite3* db) {
  bool one_row_per_point = false;
  Status st = Statement(db, "SELECT 1 FROM pragma_table_info('updates') WHERE name = 't'").each_row([&](const Statement&) {
    one_row_per_point = true;
  });
  if (!st) return Error{path_ + ": " + st.error()};
  if (!one_row_per_point) return Status::Ok();
  std::fprintf(stderr, "streamtally-collector: %s: packing the update chains (once; large stores take minutes)\n",
               path_.c_str());
  auto fail = [&](const std::string& error) -> Status {
    (void)exec_sql_status(db, "ROLLBACK");
    return Error{path_ + ": packing the update chains: " + error};
  };
  if (Status s = exec_sql_status(db, (std::string("BEGIN IMMEDIATE; ALTER TABLE updates RENAME TO updates_v3;") +
                                      kUpdatesTableSql).c_str()); !s)
    return fail(s.error());
  Statement points(db, "SELECT session, seq, t, bytes_in, bytes_out FROM updates_v3 ORDER BY session, seq");
  Statement insert(db, kInsertChainRowSql);
  std::vector<UpdatePoint> chain;
  std::string row;
  int64_t session = 0;
  auto write_chain = [&]() -> Status {
    if (chain.empty()) return Status::Ok();
    Status s = write_chain_row(insert, session, chain, row);
    chain.clear();
    return s;
  };
  while (points.step()) {
    if (points.int64(0) != session)
      if (Status s = write_chain(); !s) return fail(s.error());
    session = points.int64(0);
    chain.push_back({points.int64(1), points.int64(2), points.int64(3), points.int64(4)});
  }
  if (points.failed()) return fail(points.error());
  if (Status s = write_chain(); !s) return fail(s.error());
  points.reset();
  if (Status s = exec_sql_status(db, "DROP TABLE updates_v3; COMMIT"); !s) return fail(s.error());
  return Status::Ok();
}

// Stores made before the inbox had a file of its own (schema_version 2) kept its rows
// and the Idempotency-Keys in the store's file: they move to the inbox file, keeping
// their ids (none is applied: those were deleted when applied). Copying ignores what is
// there already, so a move cut short is simply done again at the next open.
Status SqliteStore::move_legacy_inbox() {
  sqlite3* db = writer_->db.get();
  bool legacy = false;
  Status st = Statement(db, "SELECT 1 FROM sqlite_master WHERE name = 'batches'").each_row([&](const Statement&) {
    legacy = true;
  });
  if (!st) return Error{path_ + ": " + st.error()};
  if (!legacy) return Status::Ok();
  if (Status s = inbox_->copy_legacy_tables(path_); !s) return s;
  if (Status s = exec_sql_status(db, "BEGIN IMMEDIATE; DROP TABLE IF EXISTS inbox; DROP TABLE batches; COMMIT"); !s) {
    (void)exec_sql_status(db, "ROLLBACK");
    return Error{path_ + ": moving the inbox to its own file: " + s.error()};
  }
  std::fprintf(stderr, "streamtally-collector: %s: moved the inbox and the Idempotency-Keys to %s\n", path_.c_str(),
               inbox_->path().c_str());
  return Status::Ok();
}

Result<SqliteDb> SqliteStore::acquire_reader() {
  {
    std::lock_guard lock(readers_mutex_);
    if (!readers_.empty()) {
      SqliteDb db = std::move(readers_.back());
      readers_.pop_back();
      return db;
    }
  }
  return open_database(path_, true);
}

void SqliteStore::release_reader(SqliteDb db) {
  std::lock_guard lock(readers_mutex_);
  if (readers_.size() < 16) readers_.push_back(std::move(db));
}

Result<std::unique_ptr<SqliteStore::SnapshotReaders>> SqliteStore::snapshot_readers() {
  auto readers = std::make_unique<SnapshotReaders>();
  for (unsigned i = 0; i < scan_slices_; ++i) {
    auto db = acquire_reader();
    if (!db) return Error{db.error()};
    readers->leases_.push_back(std::make_unique<ReadLease>(*this, std::move(*db)));
  }
  // In WAL mode a read transaction takes its snapshot at its first read.
  std::shared_lock no_commit(snapshot_mutex_);
  for (auto& lease : readers->leases_) {
    if (Status s = exec_sql_status(lease->get(), "BEGIN; SELECT 1 FROM sqlite_master LIMIT 1"); !s) {
      (void)exec_sql_status(lease->get(), "ROLLBACK");
      return Error{"store: starting a read: " + s.error()};
    }
    readers->connections_.push_back(lease->get());
  }
  return readers;
}

SqliteStore::SnapshotReaders::~SnapshotReaders() {
  // Ends the read transactions; the leases then return the connections to the pool.
  for (sqlite3* db : connections_) (void)exec_sql_status(db, "COMMIT");
}

// Group commit: a batch that arrives while another transaction commits waits; the
// next leader takes every waiting batch into one transaction (one fsync), each in
// its own SAVEPOINT so a failing batch is rolled back alone (see "Inbox").
Result<IngestOutcome> SqliteStore::ingest(IngestBatch batch) {
  // Held back at the backlog that wakes the applier: ingest then runs at its pace with a
  // short queue (with 100 000, the bench's ingest until applied was ~15 % slower: the
  // applier got less CPU while batches came and had more left when they stopped). If the
  // wait times out, the rows go on into the handoff, and past it to the file.
  (void)handoff_->wait_while_holding(apply_records_, kHandoffWait);
  return group_commit_.submit(batch, [this](std::span<IngestBatch* const> group) { return journal_group(group); });
}

Result<StoreStats> SqliteStore::stats() {
  // Counts include what was acknowledged; when applying fails, the stats still answer
  // (inbox_records shows the backlog) — /metrics and /healthz are where operators look.
  (void)apply_before_read();
  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  StoreStats stats;
  // Sessions are never deleted and ids are max+1, so max(id) is the count without a scan.
  Statement count(lease.get(), "SELECT coalesce(max(id), 0) FROM sessions");
  if (count.step()) stats.sessions = count.int64(0);
  if (count.failed()) return Error{count.error()};
  stats.inbox_records = inbox_records_.load();
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-inbox", "-inbox-wal", "-inbox-shm"}) {
    const auto size = std::filesystem::file_size(path_ + suffix, ec);
    if (!ec) stats.size_bytes += static_cast<int64_t>(size);
  }
  return stats;
}

}  // namespace streamtally::collector
