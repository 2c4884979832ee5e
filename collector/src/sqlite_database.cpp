#include "sqlite_database.hpp"

namespace streamtally::collector {

Result<SqliteDb> open_database(const std::string& path, bool read_only, const char* vfs) {
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
