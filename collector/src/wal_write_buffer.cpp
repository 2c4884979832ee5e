#include "wal_write_buffer.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace streamtally::collector {
namespace {

// Larger commits are written in several pieces of this size.
constexpr sqlite3_int64 kBufferBytes = 8 << 20;

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs;

struct File {
  sqlite3_file base;  // pMethods: kWalMethods or kPassMethods
  sqlite3_file* real; // the real VFS's file, stored right after this struct
  char* data;         // WAL only: bytes [offset, offset + length) not yet written
  sqlite3_int64 offset, length;
};

File* as_file(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
sqlite3_file* real(sqlite3_file* f) { return as_file(f)->real; }
const sqlite3_io_methods& real_io(sqlite3_file* f) { return *real(f)->pMethods; }

// The unix VFS writes at most 128 KiB per call (SQLite never asks for more: a page
// is at most 64 KiB), so the buffer goes out in pieces of 64 KiB.
int flush(File* f) {
  constexpr sqlite3_int64 kPiece = 64 << 10;
  int rc = SQLITE_OK;
  for (sqlite3_int64 done = 0; rc == SQLITE_OK && done < f->length; done += kPiece) {
    const sqlite3_int64 n = std::min(kPiece, f->length - done);
    rc = f->real->pMethods->xWrite(f->real, f->data + done, static_cast<int>(n), f->offset + done);
  }
  f->length = 0;
  return rc;
}
int flush(sqlite3_file* f) { return flush(as_file(f)); }

// ---- every file: forward -------------------------------------------------------------
int x_close(sqlite3_file* f) {
  File* file = as_file(f);
  const int flushed = file->data ? flush(file) : SQLITE_OK;
  const int rc = file->real->pMethods ? file->real->pMethods->xClose(file->real) : SQLITE_OK;
  std::free(file->data);
  file->data = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}
int x_read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) { return real_io(f).xRead(real(f), p, n, off); }
int x_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) { return real_io(f).xWrite(real(f), p, n, off); }
int x_truncate(sqlite3_file* f, sqlite3_int64 size) { return real_io(f).xTruncate(real(f), size); }
int x_sync(sqlite3_file* f, int flags) { return real_io(f).xSync(real(f), flags); }
int x_file_size(sqlite3_file* f, sqlite3_int64* size) { return real_io(f).xFileSize(real(f), size); }
int x_lock(sqlite3_file* f, int level) { return real_io(f).xLock(real(f), level); }
int x_unlock(sqlite3_file* f, int level) { return real_io(f).xUnlock(real(f), level); }
int x_check_reserved(sqlite3_file* f, int* out) { return real_io(f).xCheckReservedLock(real(f), out); }
int x_file_control(sqlite3_file* f, int op, void* arg) { return real_io(f).xFileControl(real(f), op, arg); }
int x_sector_size(sqlite3_file* f) { return real_io(f).xSectorSize(real(f)); }
int x_device(sqlite3_file* f) { return real_io(f).xDeviceCharacteristics(real(f)); }
int x_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return real_io(f).xShmMap(real(f), region, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) { return real_io(f).xShmLock(real(f), offset, n, flags); }
void x_shm_barrier(sqlite3_file* f) { real_io(f).xShmBarrier(real(f)); }
int x_shm_unmap(sqlite3_file* f, int del) { return real_io(f).xShmUnmap(real(f), del); }
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) { return real_io(f).xFetch(real(f), off, n, out); }
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) { return real_io(f).xUnfetch(real(f), off, p); }

// ---- the WAL: appends gathered, written before anything that could observe them ----
int wal_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  File* file = as_file(f);
  if (file->length > 0 && off == file->offset + file->length && file->length + n <= kBufferBytes) {
    std::memcpy(file->data + file->length, p, static_cast<std::size_t>(n));
    file->length += n;
    return SQLITE_OK;
  }
  // Not an append (e.g. the header when the WAL restarts): what came before goes first.
  if (const int rc = flush(file); rc != SQLITE_OK) return rc;
  if (n > 64 << 10) return x_write(f, p, n, off);  // never: SQLite writes at most a page
  file->offset = off;
  std::memcpy(file->data, p, static_cast<std::size_t>(n));
  file->length = n;
  return SQLITE_OK;
}
int wal_read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_read(f, p, n, off);
}
int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_truncate(f, size);
}
int wal_sync(sqlite3_file* f, int flags) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_sync(f, flags);
}
int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_file_size(f, size);
}
int wal_file_control(sqlite3_file* f, int op, void* arg) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_file_control(f, op, arg);
}
int wal_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return x_fetch(f, off, n, out);
}

const sqlite3_io_methods kPassMethods = {
    3,           x_close,     x_read,      x_write,        x_truncate,   x_sync,     x_file_size,
    x_lock,      x_unlock,    x_check_reserved, x_file_control, x_sector_size, x_device, x_shm_map,
    x_shm_lock,  x_shm_barrier, x_shm_unmap, x_fetch,     x_unfetch,
};
const sqlite3_io_methods kWalMethods = {
    3,           x_close,     wal_read,    wal_write,      wal_truncate, wal_sync,   wal_file_size,
    x_lock,      x_unlock,    x_check_reserved, wal_file_control, x_sector_size, x_device, x_shm_map,
    x_shm_lock,  x_shm_barrier, x_shm_unmap, wal_fetch,   x_unfetch,
};

constexpr int kFileHeader = (sizeof(File) + 7) & ~7;

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  File* file = as_file(f);
  file->base.pMethods = nullptr;
  file->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kFileHeader);
  file->data = nullptr;
  file->offset = file->length = 0;
  const bool wal = (flags & SQLITE_OPEN_WAL) != 0;
  if (wal && !(file->data = static_cast<char*>(std::malloc(kBufferBytes)))) return SQLITE_NOMEM;
  const int rc = g_real->xOpen(g_real, name, file->real, flags, out_flags);
  if (rc != SQLITE_OK || !file->real->pMethods) {
    std::free(file->data);
    file->data = nullptr;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  file->base.pMethods = wal ? &kWalMethods : &kPassMethods;
  return SQLITE_OK;
}

}  // namespace

const char* wal_write_buffer_vfs() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    if (!g_real || g_real->iVersion < 2) return;
    g_vfs = *g_real;  // every other call goes to the real VFS (same pAppData)
    g_vfs.pNext = nullptr;
    g_vfs.zName = "streamtally-walbuf";
    g_vfs.szOsFile = kFileHeader + g_real->szOsFile;
    g_vfs.xOpen = x_open;
    ok = sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
  });
  return ok ? g_vfs.zName : nullptr;
}

}  // namespace streamtally::collector
