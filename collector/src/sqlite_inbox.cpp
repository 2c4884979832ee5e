// The SQLite store's inbox (see sqlite_store.hpp, "Inbox"): acknowledging batches
// into it, and applying it to the tables the reports read.
#include <algorithm>
#include <cstdio>

#include <pthread.h>

#include "apply_group.hpp"
#include "apply_state.hpp"
#include "inbox_admission.hpp"
#include "inbox_codec.hpp"
#include "inbox_file.hpp"
#include "plan_committer.hpp"
#include "sqlite_store.hpp"
#include "sqlite_writer.hpp"
#include "streamtally/clock.hpp"

namespace streamtally::collector {

// ---- acknowledging ---------------------------------------------------------------------

std::vector<Result<IngestOutcome>> SqliteStore::journal_group(std::span<IngestBatch* const> group) {
  std::lock_guard lock(inbox_mutex_);
  auto fail_all = [&](const std::string& error) {
    return std::vector<Result<IngestOutcome>>(group.size(), Result<IngestOutcome>(Error{error}));
  };
  if (Status s = inbox_->begin(); !s) return fail_all("store busy: " + s.error());
  // Before the group's first read (admission's snapshot must hold what it may forget).
  admission_->applied_through(applied_inbox_id_);
  // Rows the applier has committed to the store go in this transaction: deleting them
  // needs no commit (no fsync) of its own, and the applier never waits for this lock.
  const int64_t deleted = delete_applied_rows_locked();
  admission_->begin_group();
  int64_t added = 0;
  std::vector<Result<IngestOutcome>> outcomes;
  std::vector<InboxHandoff::Row> rows;
  for (IngestBatch* batch : group) outcomes.push_back(journal_batch(*batch, added, rows));
  if (Status s = inbox_->commit(); !s) {
    inbox_->rollback();
    admission_->undo_group();
    return fail_all("store: commit failed: " + s.error());
  }
  admission_->group_committed();
  handoff_->publish(std::move(rows));  // committed: the applier may take them now
  if (deleted) inbox_deleted_through_ = deleted;
  inbox_records_ += added;
  if (unplanned_records() >= apply_records_) {
    { std::lock_guard wake(applier_mutex_); }  // not between the applier's check and its wait
    applier_wake_.notify_one();
  }
  return outcomes;
}

// One batch under its own savepoint: its new records become one inbox row.
Result<IngestOutcome> SqliteStore::journal_batch(IngestBatch& batch, int64_t& inbox_records,
                                                std::vector<InboxHandoff::Row>& rows) {
  if (Status s = inbox_->savepoint(); !s) return Error{"store: " + s.error()};
  admission_->begin_batch();
  auto fail = [&](const std::string& message) -> Result<IngestOutcome> {
    inbox_->rollback_to_savepoint();
    admission_->undo_batch();
    return Error{"store: " + message};
  };

  IngestOutcome outcome;
  if (!batch.idempotency_key.empty()) {
    auto seen = inbox_->knows_key(batch.idempotency_key);
    if (!seen) return fail(seen.error());
    if (*seen) {
      (void)inbox_->release();
      outcome.replayed = true;
      outcome.duplicates = static_cast<int64_t>(batch.records.size());
      return outcome;
    }
  }
  std::vector<const IngestRecord*> fresh;
  fresh.reserve(batch.records.size());
  for (IngestRecord& in : batch.records) {
    auto verdict = admission_->admit(in.record);
    if (!verdict) return fail(verdict.error());
    in.new_session = verdict->new_session;
    if (verdict->fresh)
      fresh.push_back(&in);
    else
      ++outcome.duplicates;
  }
  outcome.accepted = static_cast<int64_t>(fresh.size());
  int64_t row_id = 0;
  if (!fresh.empty()) {
    inbox_row_.clear();
    if (batch.gzip_ndjson.empty())
      encode_inbox_records(fresh, inbox_row_);
    else
      encode_inbox_gzip_row(batch, fresh, inbox_row_);
    auto row = inbox_->add_row(outcome.accepted, inbox_row_);
    if (!row) return fail(row.error());
    row_id = *row;
    admission_->admitted_into(row_id);
  }
  if (!batch.idempotency_key.empty())
    if (Status st = inbox_->remember_key(batch.idempotency_key, outcome.accepted, outcome.duplicates, now_ms()); !st)
      return fail(st.error());
  if (Status s = inbox_->release(); !s) return fail(s.error());
  inbox_records += outcome.accepted;
  if (row_id != 0) {
    InboxHandoff::Row& row = rows.emplace_back(row_id);
    if (fresh.size() == batch.records.size()) {
      row.records = std::move(batch.records);  // the common case: no duplicates
    } else {
      row.records.reserve(fresh.size());
      auto next = fresh.begin();  // in batch order
      for (IngestRecord& in : batch.records)
        if (next != fresh.end() && *next == &in) row.records.push_back(std::move(in)), ++next;
    }
  }
  return outcome;
}

// ---- applying --------------------------------------------------------------------------
// Two stages (apply_plan.hpp): the thread holding apply_mutex_ plans a chunk of rows
// into an ApplyPlan, the committer (st-writer) writes and commits it, and meanwhile the
// next chunk is planned. ApplyState runs ahead of the store by the plan in hand.

Status SqliteStore::apply_inbox(bool drain) {
  std::lock_guard lock(apply_mutex_);
  return apply_inbox_locked(drain);
}

Status SqliteStore::apply_inbox_locked(bool drain) {
  if (reload_needed_) {  // the last failure could not start over (reload failed too)
    if (Status s = apply_state_->reload(); !s) return Error{"store: applying the inbox: " + s.error()};
    reload_needed_ = false;
  }
  // What was acknowledged until now, not what keeps arriving while this runs (a report
  // waits for the batches acknowledged before it, not for an endless stream).
  auto through = inbox_->last_row();
  if (!through) return Error{"store: " + through.error()};
  // In chunks of about kApplyChunkRecords: a long backlog (after a restart) neither builds
  // one huge transaction nor holds the writer for minutes at once.
  while (planned_through_ < *through)
    if (Status s = plan_chunk(*through); !s) return start_over(s);
  if (drain)
    if (Status s = retire_in_flight(); !s) return start_over(s);
  return Status::Ok();
}

struct SqliteStore::Chunk {
  struct Row {
    int64_t id = 0;
    int64_t records = 0;  // as counted when acknowledged
    std::vector<IngestRecord> decoded;
    std::string damage;   // why the row could not be decoded ("" when it was)
    std::string body;     // the row as stored, kept only when damaged
  };
  std::vector<Row> rows;
  int64_t through = 0;  // the rows up to here are in `rows` (none: there were none)
};

Result<SqliteStore::Chunk> SqliteStore::take_chunk(int64_t through) {
  Chunk chunk;
  InboxHandoff::Chunk handed = handoff_->take(planned_through_, through, kApplyChunkRecords);
  for (InboxHandoff::Row& row : handed.held) {
    const auto records = static_cast<int64_t>(row.records.size());
    chunk.rows.push_back({row.id, records, std::move(row.records), {}, {}});
  }
  if (!chunk.rows.empty()) {
    chunk.through = chunk.rows.back().id;
    return chunk;
  }
  auto rows = inbox_->rows_after(planned_through_, handed.file_through, kApplyChunkRecords);
  if (!rows) return Error{"store: " + rows.error()};
  for (InboxFile::Row& row : *rows) {
    Chunk::Row& c = chunk.rows.emplace_back();
    c.id = row.id, c.records = row.records;
    auto d = decode_inbox_records(row.body, enrich_);
    if (d)
      c.decoded = std::move(*d);
    else
      c.damage = d.error(), c.body = std::move(row.body);
  }
  // rows_after stops once it has enough records; without rows, nothing is there to read.
  chunk.through = chunk.rows.empty() ? handed.file_through : chunk.rows.back().id;
  return chunk;
}

// Plans the rows after planned_through_ (up to `through`, about kApplyChunkRecords
// records) as one transaction, and hands it to the committer once the one before is
// done. The plan records the last row it applies; the next acknowledging transaction
// after its commit deletes the rows from the inbox file.
Status SqliteStore::plan_chunk(int64_t through) {
  // The cache starts over when it grew too large, with no plan in hand (it holds what
  // the store has not committed yet).
  if (apply_state_->sessions.size() > kMaxCachedSessions) {
    if (Status s = retire_in_flight(); !s) return s;
    apply_state_->sessions.clear();
  }
  auto chunk = take_chunk(through);
  if (!chunk) return Error{chunk.error()};
  int64_t records = 0;
  for (const Chunk::Row& row : chunk->rows) records += row.records;
  // The records the handoff gave are gone from it now: if this chunk does not commit,
  // start_over() sends the applier to the file for them.
  planned_through_ = chunk->through;
  planned_records_ += records;

  ApplyGroup tx(*apply_state_, committer_->in_hand(), max_session_ms_);
  // In time order rather than arrival order: batches sent over several connections
  // arrive interleaved, and an update applied after a later one of its session is
  // attributed by replaying the session's whole chain; in time order a session's
  // updates come in seq order, and each is the cheap "next update".
  std::vector<const IngestRecord*> order;
  order.reserve(static_cast<std::size_t>(records));
  for (const Chunk::Row& row : chunk->rows)
    for (const IngestRecord& in : row.decoded) order.push_back(&in);
  std::stable_sort(order.begin(), order.end(), [](const IngestRecord* a, const IngestRecord* b) {
    return std::pair(a->record.updated_at, a->record.seq) < std::pair(b->record.updated_at, b->record.seq);
  });
  for (const IngestRecord* in : order)
    if (auto applied = tx.add(*in); !applied) return Error{"store: applying the inbox: " + applied.error()};

  auto plan = std::make_shared<ApplyPlan>(tx.seal());
  plan->through = chunk->through;
  plan->records = records;
  for (Chunk::Row& row : chunk->rows)
    if (!row.damage.empty()) plan->damaged.push_back({row.id, std::move(row.body), std::move(row.damage)});
  plan->records_owner = std::make_shared<Chunk>(std::move(*chunk));
  if (Status s = retire_in_flight(); !s) return s;
  committer_->start(std::move(plan));
  return Status::Ok();
}

// Waits for the plan in hand: its closed sessions leave the cache once it committed.
Status SqliteStore::retire_in_flight() {
  auto done = committer_->wait();
  if (!done) return Status::Ok();
  if (done->status) apply_state_->forget_closed(*done->plan);
  // The plan and the records it points into are freed on another thread: not the applier's time.
  release_.release(std::move(done->plan));
  return done->status;
}

// After a failure, planning or committing: what was planned on top of the store is
// dropped, and its rows are read again from the file.
Status SqliteStore::start_over(const Status& failure) {
  (void)committer_->wait();  // its outcome does not matter: everything starts over from what committed
  if (planned_through_ > applied_inbox_id_) handoff_->not_applied(planned_through_);
  planned_through_ = applied_inbox_id_;
  planned_records_ = 0;
  if (Status s = apply_state_->reload(); !s) reload_needed_ = true;
  return failure;
}

// On the committer's thread: one plan in one transaction of the store's file, which
// records the last inbox row it applied.
Status SqliteStore::commit_plan(const ApplyPlan& plan) {
  SqliteWriter& w = *writer_;
  sqlite3* db = w.db.get();
  if (Status s = exec_sql_status(db, "BEGIN IMMEDIATE"); !s) return Error{"store busy: " + s.error()};
  auto abandon = [&](const std::string& message) -> Status {
    (void)exec_sql_status(db, "ROLLBACK");
    w.reset_all();
    return Error{"store: applying the inbox: " + message};
  };
  if (Status s = w.write(plan); !s) return abandon(s.error());
  w.set_meta.bind(1, std::string_view("applied_inbox_id")).bind(2, plan.through);
  if (Status st = w.set_meta.run_and_reset(); !st) return abandon(st.error());
  // Plans are made ahead of commits: a plan knows the longest session as of when it
  // was made, this thread as of the last commit.
  if (plan.max_session_ms > max_session_ms_) {
    w.set_meta.bind(1, std::string_view("max_session_ms")).bind(2, plan.max_session_ms);
    if (Status st = w.set_meta.run_and_reset(); !st) return abandon(st.error());
    // Raised before the commit is visible: readers bound their range scans with it,
    // and a bound that is briefly too large is harmless, one too small is not.
    max_session_ms_ = plan.max_session_ms;
  }
  {
    std::unique_lock no_snapshot_starts(snapshot_mutex_);  // see snapshot_readers()
    if (Status s = exec_sql_status(db, "COMMIT"); !s) return abandon("commit failed: " + s.error());
  }
  applied_inbox_id_ = plan.through;
  inbox_records_ -= plan.records;  // first: unplanned_records() may briefly be low, never high
  planned_records_ -= plan.records;
  return Status::Ok();  // the rows leave the inbox file with the next acknowledgement
}

int64_t SqliteStore::unplanned_records() const { return inbox_records_.load() - planned_records_.load(); }

void SqliteStore::applier_loop() {
  pthread_setname_np(pthread_self(), "st-applier");  // in top -H, perf, gdb
  std::unique_lock lock(applier_mutex_);
  while (!stopping_) {
    const bool enough =
        applier_wake_.wait_for(lock, kApplyDelay, [&] { return stopping_ || unplanned_records() >= apply_records_; });
    if (stopping_ || inbox_records_.load() == 0) continue;
    lock.unlock();
    // Woken by records, the last plan is left to commit while the next records come;
    // otherwise (kApplyDelay) everything is applied, and a failed commit found and retried.
    const Status s = apply_inbox(/*drain=*/!enough);
    lock.lock();
    if (!s) {  // tried again after kApplyDelay (not at once: the cause may last)
      std::fprintf(stderr, "streamtally-collector: %s (retried)\n", s.error().c_str());
      applier_wake_.wait_for(lock, kApplyDelay, [&] { return stopping_; });
    }
  }
}

}  // namespace streamtally::collector
