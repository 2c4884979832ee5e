#include "sqlite_handle.hpp"

namespace streamtally::collector {

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                         nullptr) != SQLITE_OK)
    error_ = std::string(sqlite3_errmsg(db)) + " in: " + std::string(sql.substr(0, 200));
  stmt_.reset(raw);
}

Statement& Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}
Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bind(int index, const std::optional<std::string>& value) {
  return value ? bind(index, std::string_view(*value)) : bind_null(index);
}
Statement& Statement::bind(int index, const std::optional<int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}
Statement& Statement::bind(int index, double value) {
  sqlite3_bind_double(stmt_.get(), index, value);
  return *this;
}
Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE && error_.empty()) error_ = sqlite3_errmsg(db_);
  return false;
}

Status Statement::run() {
  while (step()) {
  }
  if (failed()) return Error{error_};
  return Status::Ok();
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
  error_.clear();
}

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_.get(), col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_.get(), col)) : std::string();
}
std::optional<std::string> Statement::nullable_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}
std::optional<int64_t> Statement::nullable_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

Status exec_sql(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    return Error{text};
  }
  return Status::Ok();
}

Result<DbHandle> open_database(const std::string& path, bool read_only, const char* vfs) {
  sqlite3* raw = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  DbHandle db(raw);
  if (rc != SQLITE_OK) return Error{"cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory")};
  sqlite3_busy_timeout(db.get(), 10000);
  // WAL lets queries read while a batch commits; synchronous=FULL makes a commit
  // durable before the batch is acknowledged (SPEC: ack only after a durable commit).
  const char* pragmas = read_only ? "PRAGMA cache_size=-65536; PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY;"
                                  : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-131072;"
                                    "PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY;";
  if (Status s = exec_sql(db.get(), pragmas); !s) return Error{path + ": " + s.error()};
  return db;
}

}  // namespace streamtally::collector
