// The SQLite store's inbox (see sqlite_store.hpp, "Inbox"): acknowledging batches
// into it, and applying it to the tables the reports read.
#include <algorithm>
#include <cstdio>

#include "apply_group.hpp"
#include "inbox_admission.hpp"
#include "inbox_codec.hpp"
#include "sqlite_store.hpp"
#include "sqlite_writer.hpp"
#include "streamtally/clock.hpp"

namespace streamtally::collector {

// ---- acknowledging ---------------------------------------------------------------------

void SqliteStore::journal_group(std::vector<std::shared_ptr<PendingBatch>>& group) {
  std::lock_guard lock(writer_mutex_);
  sqlite3* db = writer_->db.get();
  auto finish_all = [&](const std::string& error) {
    for (auto& p : group) {
      if (!error.empty()) p->result = Error{error};
      p->done = true;
    }
  };
  if (Status s = exec_sql_status(db, "BEGIN IMMEDIATE"); !s) return finish_all("store busy: " + s.error());
  admission_->begin_group();
  int64_t added = 0;
  for (auto& p : group) p->result = journal_batch(*p->batch, added);
  if (Status s = exec_sql_status(db, "COMMIT"); !s) {
    (void)exec_sql_status(db, "ROLLBACK");
    admission_->undo_group();
    writer_->reset_all();
    return finish_all("store: commit failed: " + s.error());
  }
  admission_->group_committed();
  if (inbox_records_.fetch_add(added) + added >= kApplyRecords) {
    { std::lock_guard wake(applier_mutex_); }  // not between the applier's check and its wait
    applier_wake_.notify_one();
  }
  finish_all("");
}

// One batch under its own savepoint: its new records become one inbox row.
Result<IngestOutcome> SqliteStore::journal_batch(const IngestBatch& batch, int64_t& inbox_records) {
  SqliteWriter& w = *writer_;
  sqlite3* db = w.db.get();
  if (Status s = exec_sql_status(db, "SAVEPOINT batch"); !s) return Error{"store: " + s.error()};
  admission_->begin_batch();
  auto fail = [&](const std::string& message) -> Result<IngestOutcome> {
    (void)exec_sql_status(db, "ROLLBACK TO batch; RELEASE batch");
    w.reset_all();
    admission_->undo_batch();
    return Error{"store: " + message};
  };

  IngestOutcome outcome;
  if (!batch.idempotency_key.empty()) {
    bool seen = false;
    Status st = w.find_batch.bind(1, batch.idempotency_key).each_row([&](const Statement&) { seen = true; });
    if (!st) return fail(st.error());
    if (seen) {
      (void)exec_sql_status(db, "RELEASE batch");
      outcome.replayed = true;
      outcome.duplicates = static_cast<int64_t>(batch.records.size());
      return outcome;
    }
  }
  std::vector<const IngestRecord*> fresh;
  fresh.reserve(batch.records.size());
  for (const IngestRecord& in : batch.records) {
    auto is_new = admission_->admit(in.record);
    if (!is_new) return fail(is_new.error());
    if (*is_new)
      fresh.push_back(&in);
    else
      ++outcome.duplicates;
  }
  outcome.accepted = static_cast<int64_t>(fresh.size());
  if (!fresh.empty()) {
    inbox_row_.clear();
    encode_inbox_records(fresh, inbox_row_);
    w.insert_inbox.bind(1, outcome.accepted).bind_blob(2, inbox_row_.data(), inbox_row_.size());
    Status st = w.insert_inbox.run_and_reset();
    if (!st) return fail(st.error());
  }
  if (!batch.idempotency_key.empty()) {
    w.insert_batch.bind(1, batch.idempotency_key).bind(2, outcome.accepted).bind(3, outcome.duplicates);
    w.insert_batch.bind(4, now_ms());
    Status st = w.insert_batch.run_and_reset();
    if (!st) return fail(st.error());
  }
  if (Status s = exec_sql_status(db, "RELEASE batch"); !s) return fail(s.error());
  inbox_records += outcome.accepted;
  return outcome;
}

// ---- applying --------------------------------------------------------------------------

Status SqliteStore::apply_inbox() {
  std::lock_guard lock(writer_mutex_);
  return apply_inbox_locked();
}

Status SqliteStore::apply_inbox_locked() {
  // In chunks of about kApplyRecords: a long backlog (after a restart) neither builds
  // one huge transaction nor holds the writer for minutes at once.
  int64_t after = 0;
  for (bool more = true; more;)
    if (Status s = apply_chunk(after, more); !s) return s;
  // Everything acknowledged is in the tables now: admission asks them from here on.
  admission_->forget_all();
  return Status::Ok();
}

// Applies the rows after `after` up to about kApplyRecords records in one transaction.
Status SqliteStore::apply_chunk(int64_t& after, bool& more) {
  SqliteWriter& w = *writer_;
  sqlite3* db = w.db.get();
  struct Row {
    int64_t id = 0;
    int64_t records = 0;
    std::vector<IngestRecord> decoded;
    std::string damage;  // why the row could not be decoded
  };
  std::vector<Row> rows;
  int64_t records = 0;
  Statement& q = w.read_inbox;
  q.bind(1, after);
  more = true;  // unless the rows run out below
  while (records < kApplyRecords) {
    if (!q.step()) {
      more = false;
      break;
    }
    Row row;
    row.id = q.int64(0);
    row.records = q.int64(1);
    auto decoded = decode_inbox_records(q.blob(2));
    if (decoded)
      row.decoded = std::move(*decoded);
    else
      row.damage = decoded.error();
    records += row.records;
    rows.push_back(std::move(row));
  }
  const bool failed = q.failed();
  std::string error = failed ? q.error() : std::string();
  q.reset();
  if (failed) return Error{"store: reading the inbox: " + error};
  if (rows.empty()) {
    more = false;
    return Status::Ok();
  }
  after = rows.back().id;

  if (Status s = exec_sql_status(db, "BEGIN IMMEDIATE"); !s) return Error{"store busy: " + s.error()};
  ApplyGroup tx(w, max_session_ms_);
  auto abandon = [&](const std::string& message) -> Status {
    (void)exec_sql_status(db, "ROLLBACK");
    tx.abandoned();
    return Error{"store: applying the inbox: " + message};
  };
  // In time order rather than arrival order: batches sent over several connections
  // arrive interleaved, and an update applied after a later one of its session is
  // attributed by replaying the session's whole chain; in time order a session's
  // updates come in seq order, and each is the cheap "next update".
  std::vector<const IngestRecord*> order;
  order.reserve(static_cast<std::size_t>(records));
  for (const Row& row : rows)
    for (const IngestRecord& in : row.decoded) order.push_back(&in);
  std::stable_sort(order.begin(), order.end(), [](const IngestRecord* a, const IngestRecord* b) {
    return std::pair(a->record.updated_at, a->record.seq) < std::pair(b->record.updated_at, b->record.seq);
  });
  for (const IngestRecord* in : order)
    if (auto applied = tx.add(*in); !applied) return abandon(applied.error());
  for (const Row& row : rows) {
    if (!row.damage.empty()) {
      // Kept aside with the reason: never applied, never lost, never blocking the rest.
      std::fprintf(stderr, "streamtally-collector: inbox row %lld moved to inbox_damaged: %s\n",
                   static_cast<long long>(row.id), row.damage.c_str());
      w.keep_damaged.bind(1, row.id).bind(2, row.damage).bind(3, now_ms());
      Status st = w.keep_damaged.run_and_reset();
      if (!st) return abandon(st.error());
    }
    w.delete_inbox.bind(1, row.id);
    Status st = w.delete_inbox.run_and_reset();
    if (!st) return abandon(st.error());
  }
  if (Status s = tx.write(); !s) return abandon(s.error());
  // Raised before the commit is visible: readers bound their range scans with it,
  // and a bound that is briefly too large is harmless, one too small is not.
  if (tx.max_session_ms() > max_session_ms_) max_session_ms_ = tx.max_session_ms();
  if (Status s = exec_sql_status(db, "COMMIT"); !s) return abandon("commit failed: " + s.error());
  tx.committed();
  inbox_records_ -= records;
  return Status::Ok();
}

void SqliteStore::applier_loop() {
  std::unique_lock lock(applier_mutex_);
  while (!stopping_) {
    applier_wake_.wait_for(lock, kApplyDelay, [&] { return stopping_ || inbox_records_.load() >= kApplyRecords; });
    if (stopping_ || inbox_records_.load() == 0) continue;
    lock.unlock();
    if (Status s = apply_inbox(); !s) std::fprintf(stderr, "streamtally-collector: %s (retried)\n", s.error().c_str());
    lock.lock();
  }
}

}  // namespace streamtally::collector
