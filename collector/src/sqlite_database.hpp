// The collector's SQLite connections: opened with the pragmas every store connection uses.
// Statements and handles are the project's one wrapper, streamtally/sqlite_handle.hpp.
#pragma once

#include <string>

#include "streamtally/result.hpp"
#include "streamtally/sqlite_handle.hpp"

namespace streamtally::collector {

// Opens (creating) a database file; vfs: a registered VFS name, nullptr for the default.
Result<SqliteDb> open_database(const std::string& path, bool read_only, const char* vfs = nullptr);

}  // namespace streamtally::collector
