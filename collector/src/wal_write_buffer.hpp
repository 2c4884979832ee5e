// A SQLite VFS shim that gathers the writer's WAL appends into one write per commit.
//
// SQLite writes every WAL frame with two pwrite() calls (24-byte header, then the
// page). A commit of the collector touches hundreds of pages (the rows of every open
// session), and on this class of machine a small pwrite costs ~1.5 us — more than
// copying the page. The shim keeps contiguous appends to the "-wal" file in memory and
// writes them with one pwrite() when SQLite syncs the file (every commit: WAL with
// synchronous=FULL), reads it, truncates it, asks its size or closes it, or when the
// buffer is full. Durability is unchanged: everything reaches the file before the
// fsync that makes the commit durable; other connections only read frames that a
// commit published, i.e. after that sync. Every other file passes straight through.
#pragma once

namespace streamtally::collector {

// Registers the shim (once, not as the default) and returns its VFS name for
// sqlite3_open_v2; nullptr when registration failed (the caller uses the default).
const char* wal_write_buffer_vfs();

}  // namespace streamtally::collector
