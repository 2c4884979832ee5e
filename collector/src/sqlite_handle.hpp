// RAII for SQLite handles used by the collector's store: a connection and a prepared
// statement with typed binders. Errors come back as Status values naming the SQL.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "streamtally/result.hpp"

namespace streamtally::collector {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct SqliteFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbHandle = std::unique_ptr<sqlite3, SqliteCloser>;

// One prepared statement. bind() is 1-based like SQLite; step() returns true while
// a row is available. reset() clears bindings so a cached statement can be reused.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, std::string_view sql);
  bool valid() const { return stmt_ != nullptr; }
  const std::string& error() const { return error_; }

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::optional<std::string>& value);
  Statement& bind(int index, const std::optional<int64_t>& value);
  Statement& bind(int index, double value);
  Statement& bind_null(int index);

  // SQLITE_ROW -> true, SQLITE_DONE -> false; any other code is recorded in error().
  bool step();
  Status run();  // step to completion
  void reset();
  bool failed() const { return !error_.empty(); }

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  double real(int col) const { return sqlite3_column_double(stmt_.get(), col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  std::string text(int col) const;
  bool text_equals(int col, std::string_view value) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
    return p && std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), col))) == value;
  }
  std::optional<std::string> nullable_text(int col) const;
  std::optional<int64_t> nullable_int64(int col) const;
  int columns() const { return sqlite3_column_count(stmt_.get()); }

 private:
  std::unique_ptr<sqlite3_stmt, SqliteFinalizer> stmt_;
  sqlite3* db_ = nullptr;
  std::string error_;
};

// Runs one or more statements without results (schema, pragmas, BEGIN/COMMIT).
Status exec_sql(sqlite3* db, const char* sql);

// Opens (creating) a database file with the pragmas every collector connection uses;
// vfs: a registered VFS name, nullptr for the default.
Result<DbHandle> open_database(const std::string& path, bool read_only, const char* vfs = nullptr);

}  // namespace streamtally::collector
