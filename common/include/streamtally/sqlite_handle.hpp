// RAII for SQLite: a connection handle and a prepared statement with typed binders and
// column readers. The one wrapper of the project: the spool acts on result codes
// (corruption, a full disk, busy), the collector's store on rows and error messages, so a
// statement offers both — step_rc() and step().
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "streamtally/result.hpp"

namespace streamtally {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

// One prepared statement (SQLITE_PREPARE_PERSISTENT: most are cached for a connection's
// life). Binders are 1-based like SQLite; reset() clears bindings and the error so a cached
// statement runs again.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, std::string_view sql);  // check ok(); error() says why not
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(Statement&& o) noexcept;
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  int prepare_rc() const { return prepare_rc_; }
  sqlite3_stmt* get() const { return stmt_; }
  // The first failure since the last reset (or of the prepare), with SQLite's message.
  const std::string& error() const { return error_; }
  bool failed() const { return !error_.empty(); }

  Statement& bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); return *this; }
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); return *this; }
  Statement& bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const std::optional<std::string>& v) { return v ? bind(i, *v) : bind_null(i); }
  Statement& bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
  // No copy: `v` must stay alive until step() (hot paths bind, step, reset in one scope).
  Statement& bind_static(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& bind_static(int i, const std::string& v) { return bind_static(i, std::string_view(v)); }
  Statement& bind_static(int i, const std::optional<std::string>& v) { return v ? bind_static(i, *v) : bind_null(i); }
  Statement& bind_blob(int i, const void* data, std::size_t size) {
    sqlite3_bind_blob64(stmt_, i, data, size, SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_null(int i) { sqlite3_bind_null(stmt_, i); return *this; }

  // One step's result code: SQLITE_ROW, SQLITE_DONE, or an error (also kept in error()).
  int step_rc();
  // True while a row is available; an error ends the rows and is kept in error().
  bool step() { return step_rc() == SQLITE_ROW; }
  Status run();  // steps to completion
  void reset();
  // Steps to completion, then reset() for the next run: the outcome, with SQLite's message.
  Status run_and_reset() {
    Status s = run();
    reset();
    return s;
  }
  // Calls row(*this) for every row, then reset() for the next run: the first failure,
  // with its message (reset() clears error(), so it must be read before).
  template <class F>
  Status each_row(F&& row) {
    while (step()) row(*this);
    Status s = failed() ? Status(Error{error_}) : Status::Ok();
    reset();
    return s;
  }
  // One step of a statement without rows, then reset() for the next run: the result code.
  int step_and_reset() {
    const int rc = step_rc();
    reset();
    return rc;
  }

  int columns() const { return sqlite3_column_count(stmt_); }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string_view text_view(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string_view();
  }
  std::string text(int col) const { return std::string(text_view(col)); }
  bool text_equals(int col, std::string_view value) const { return !is_null(col) && text_view(col) == value; }
  std::optional<std::string> nullable_text(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::string>(text(col));
  }
  std::optional<int64_t> nullable_int64(int col) const {
    return is_null(col) ? std::nullopt : std::optional<int64_t>(int64(col));
  }
  std::string_view blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string_view();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  int prepare_rc_ = SQLITE_OK;
  std::string error_;
};

// Runs one or more statements without results; returns the SQLite result code.
int exec_sql(sqlite3* db, const char* sql);
// The same, with SQLite's message on failure.
Status exec_sql_status(sqlite3* db, const char* sql);

}  // namespace streamtally
