// The inbox's own SQLite file, next to the store's (`<store>-inbox`): acknowledged
// batches wait here, one row each (their new records in inbox_codec.hpp's format),
// with their Idempotency-Keys, until the applier has written them to the store
// (sqlite_store.hpp, "Inbox").
//
// A file of its own is a write lock of its own: batches are acknowledged while the
// applier writes a large transaction to the store, instead of waiting for it.
//
// Which rows are applied is recorded in the store's file, in the transaction that
// applies them (meta.applied_inbox_id): rows are deleted here only afterwards, and a
// row at or below that id that is still here (the process died in between) is never
// applied again. Row ids never repeat (AUTOINCREMENT), so "at or below" stays true
// when the table runs empty.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sqlite_database.hpp"

namespace streamtally::collector {

class InboxFile {
 public:
  // Opens (creating) the file at path.
  static Result<std::unique_ptr<InboxFile>> open(const std::string& path);

  const std::string& path() const { return path_; }

  // Copies the inbox and batches tables of a store file made before the inbox had its
  // own file, keeping the row ids; what is here already is kept.
  Status copy_legacy_tables(const std::string& store_path);

  // ---- the acknowledging connection (one thread at a time) ----
  Status begin();   // BEGIN IMMEDIATE
  Status commit();  // durable when it returns (synchronous=FULL)
  void rollback();
  Status savepoint();
  Status release();
  void rollback_to_savepoint();
  // Whether a batch with this Idempotency-Key was acknowledged.
  Result<bool> knows_key(const std::string& key);
  Status remember_key(const std::string& key, int64_t accepted, int64_t duplicates, int64_t received_at);
  // Adds a row; its id.
  Result<int64_t> add_row(int64_t records, std::string_view body);
  // Deletes the rows up to and including id (they are applied): inside the transaction
  // begin() opened, or in one of its own.
  Status delete_through(int64_t id);

  // ---- the applier's connection (one thread at a time) ----
  struct Row {
    int64_t id = 0;
    int64_t records = 0;
    std::string body;
  };
  // The rows after `after` up to and including `through`, in id order, until they hold
  // at least max_records records.
  Result<std::vector<Row>> rows_after(int64_t after, int64_t through, int64_t max_records);
  // The id of the last row committed (0 when there is none).
  Result<int64_t> last_row();
  // How many records the rows after id hold.
  Result<int64_t> records_after(int64_t id);

 private:
  explicit InboxFile(std::string path) : path_(std::move(path)) {}

  std::string path_;
  SqliteDb writer_, reader_;
  Statement find_batch_, insert_batch_, insert_row_, delete_rows_;
  Statement read_rows_, count_records_, last_row_;
};

}  // namespace streamtally::collector
