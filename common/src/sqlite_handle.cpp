#include "streamtally/sqlite_handle.hpp"

namespace streamtally {

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  prepare_rc_ = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt_,
                                   nullptr);
  if (prepare_rc_ != SQLITE_OK) {
    error_ = std::string(sqlite3_errmsg(db)) + " in: " + std::string(sql.substr(0, 200));
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
}

Statement::Statement(Statement&& o) noexcept
    : stmt_(o.stmt_), db_(o.db_), prepare_rc_(o.prepare_rc_), error_(std::move(o.error_)) {
  o.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    stmt_ = o.stmt_;
    db_ = o.db_;
    prepare_rc_ = o.prepare_rc_;
    error_ = std::move(o.error_);
    o.stmt_ = nullptr;
  }
  return *this;
}

int Statement::step_rc() {
  const int rc = sqlite3_step(stmt_);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE && error_.empty()) error_ = sqlite3_errmsg(db_);
  return rc;
}

Status Statement::run() {
  while (step()) {
  }
  if (failed()) return Error{error_};
  return Status::Ok();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  error_.clear();
}

int exec_sql(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

Status exec_sql_status(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    return Error{text};
  }
  return Status::Ok();
}

}  // namespace streamtally
