#include "sqlite_database.hpp"

#include <mutex>

namespace streamtally::collector {

Result<SqliteDb> open_database(const std::string& path, bool read_only, const char* vfs) {
  // SQLite's memory statistics take a global mutex on every malloc and free it makes
  // (~4 % of an apply); nothing here reads them. Only possible before SQLite starts: in
  // a process that opened a database already, this changes nothing (SQLITE_MISUSE).
  static std::once_flag no_memory_statistics;
  std::call_once(no_memory_statistics, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* raw = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) return Error{"cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory")};
  sqlite3_busy_timeout(db.get(), 10000);
  // WAL lets queries read while a batch commits; synchronous=FULL makes a commit
  // durable before the batch is acknowledged (SPEC: ack only after a durable commit).
  const char* pragmas = read_only ? "PRAGMA cache_size=-65536; PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY;"
                                  : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-131072;"
                                    "PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY;";
  if (Status s = exec_sql_status(db.get(), pragmas); !s) return Error{path + ": " + s.error()};
  return db;
}

}  // namespace streamtally::collector
