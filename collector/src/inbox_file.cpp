#include "inbox_file.hpp"

#include "wal_write_buffer.hpp"

namespace streamtally::collector {

namespace {

constexpr const char* kInboxSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('schema_version', 1);
-- One row per acknowledged batch that had new records: how many, and the records.
CREATE TABLE IF NOT EXISTS inbox(id INTEGER PRIMARY KEY AUTOINCREMENT, records INTEGER NOT NULL, body BLOB NOT NULL);
-- The Idempotency-Key of every acknowledged batch, and what its first delivery counted.
CREATE TABLE IF NOT EXISTS batches(
  idempotency_key TEXT PRIMARY KEY, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
  received_at INTEGER NOT NULL) WITHOUT ROWID;
)sql";

Status with_path(const std::string& path, Status s) { return s ? s : Status(Error{path + ": " + s.error()}); }

}  // namespace

Result<std::unique_ptr<InboxFile>> InboxFile::open(const std::string& path) {
  std::unique_ptr<InboxFile> f(new InboxFile(path));
  // Like the store's writer: each commit's WAL frames go out in one write.
  auto writer = open_database(path, false, wal_write_buffer_vfs());
  if (!writer) return Error{writer.error()};
  f->writer_ = std::move(*writer);
  if (Status s = exec_sql_status(f->writer_.get(), kInboxSchema); !s) return Error{path + ": " + s.error()};
  auto reader = open_database(path, true);
  if (!reader) return Error{reader.error()};
  f->reader_ = std::move(*reader);
  sqlite3* w = f->writer_.get();
  f->find_batch_ = Statement(w, "SELECT 1 FROM batches WHERE idempotency_key = ?1");
  f->insert_batch_ = Statement(w, "INSERT INTO batches VALUES (?1, ?2, ?3, ?4)");
  f->insert_row_ = Statement(w, "INSERT INTO inbox (records, body) VALUES (?1, ?2)");
  f->delete_rows_ = Statement(w, "DELETE FROM inbox WHERE id <= ?1");
  f->read_rows_ = Statement(f->reader_.get(), "SELECT id, records, body FROM inbox WHERE id > ?1 AND id <= ?2 ORDER BY id");
  f->count_records_ = Statement(f->reader_.get(), "SELECT coalesce(sum(records), 0) FROM inbox WHERE id > ?1");
  f->last_row_ = Statement(f->reader_.get(), "SELECT coalesce(max(id), 0) FROM inbox");
  for (const Statement* s : {&f->find_batch_, &f->insert_batch_, &f->insert_row_, &f->delete_rows_, &f->read_rows_,
                             &f->count_records_, &f->last_row_})
    if (!s->ok()) return Error{path + ": " + s->error()};
  return f;
}

Status InboxFile::copy_legacy_tables(const std::string& store_path) {
  sqlite3* db = writer_.get();
  Statement attach(db, "ATTACH ?1 AS legacy");
  if (Status s = attach.bind(1, store_path).run(); !s) return Error{path_ + ": attaching " + store_path + ": " + s.error()};
  bool has_inbox = false;  // schema_version 1 had the keys only
  Status s = Statement(db, "SELECT 1 FROM legacy.sqlite_master WHERE name = 'inbox'").each_row([&](const Statement&) {
    has_inbox = true;
  });
  if (s) s = exec_sql_status(db, "BEGIN IMMEDIATE; INSERT OR IGNORE INTO batches SELECT * FROM legacy.batches");
  if (s && has_inbox)
    s = exec_sql_status(db, "INSERT OR IGNORE INTO inbox (id, records, body) SELECT id, records, body FROM legacy.inbox");
  if (s) s = exec_sql_status(db, "COMMIT");
  if (!s) (void)exec_sql_status(db, "ROLLBACK");
  (void)exec_sql_status(db, "DETACH legacy");
  return s ? s : Status(Error{path_ + ": copying the inbox from " + store_path + ": " + s.error()});
}

Status InboxFile::begin() { return with_path(path_, exec_sql_status(writer_.get(), "BEGIN IMMEDIATE")); }
Status InboxFile::commit() { return with_path(path_, exec_sql_status(writer_.get(), "COMMIT")); }
Status InboxFile::savepoint() { return with_path(path_, exec_sql_status(writer_.get(), "SAVEPOINT batch")); }
Status InboxFile::release() { return with_path(path_, exec_sql_status(writer_.get(), "RELEASE batch")); }

void InboxFile::rollback() {
  (void)exec_sql_status(writer_.get(), "ROLLBACK");
  for (Statement* s : {&find_batch_, &insert_batch_, &insert_row_, &delete_rows_}) s->reset();
}

void InboxFile::rollback_to_savepoint() {
  (void)exec_sql_status(writer_.get(), "ROLLBACK TO batch; RELEASE batch");
  for (Statement* s : {&find_batch_, &insert_batch_, &insert_row_}) s->reset();
}

Result<bool> InboxFile::knows_key(const std::string& key) {
  bool seen = false;
  Status st = find_batch_.bind(1, key).each_row([&](const Statement&) { seen = true; });
  if (!st) return Error{st.error()};
  return seen;
}

Status InboxFile::remember_key(const std::string& key, int64_t accepted, int64_t duplicates, int64_t received_at) {
  return insert_batch_.bind(1, key).bind(2, accepted).bind(3, duplicates).bind(4, received_at).run_and_reset();
}

Result<int64_t> InboxFile::add_row(int64_t records, std::string_view body) {
  Status st = insert_row_.bind(1, records).bind_blob(2, body.data(), body.size()).run_and_reset();
  if (!st) return Error{st.error()};
  return sqlite3_last_insert_rowid(writer_.get());
}

Status InboxFile::delete_through(int64_t id) {
  // Inside the acknowledging transaction, or on its own (at open and close): the rows
  // are applied, so losing this delete to a crash only leaves rows that are skipped.
  return with_path(path_, delete_rows_.bind(1, id).run_and_reset());
}

Result<std::vector<InboxFile::Row>> InboxFile::rows_after(int64_t after, int64_t through, int64_t max_records) {
  std::vector<Row> rows;
  int64_t records = 0;
  read_rows_.bind(1, after).bind(2, through);
  while (records < max_records && read_rows_.step()) {
    Row row;
    row.id = read_rows_.int64(0);
    row.records = read_rows_.int64(1);
    row.body = std::string(read_rows_.blob(2));
    records += row.records;
    rows.push_back(std::move(row));
  }
  const bool failed = read_rows_.failed();
  std::string error = failed ? read_rows_.error() : std::string();
  read_rows_.reset();
  if (failed) return Error{path_ + ": reading the inbox: " + error};
  return rows;
}

Result<int64_t> InboxFile::last_row() {
  int64_t id = 0;
  Status st = last_row_.each_row([&](const Statement& q) { id = q.int64(0); });
  if (!st) return Error{path_ + ": " + st.error()};
  return id;
}

Result<int64_t> InboxFile::records_after(int64_t id) {
  int64_t records = 0;
  Status st = count_records_.bind(1, id).each_row([&](const Statement& q) { records = q.int64(0); });
  if (!st) return Error{path_ + ": " + st.error()};
  return records;
}

}  // namespace streamtally::collector
