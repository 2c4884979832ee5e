#include "streamtally/spool.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include "streamtally/clock.hpp"
#include "streamtally/log.hpp"
#include "streamtally/process_identity.hpp"
#include "streamtally/record_codec.hpp"
#include "streamtally/sqlite_handle.hpp"
#include "streamtally/uuid.hpp"

namespace streamtally {
namespace {

// One row per session: its latest update (`seq`, `body`) and how far the collector has it
// (`sent_seq`). The row is pending while seq > sent_seq, so a newer update simply replaces
// an unsent one (coalescing) and the row is always the snapshot crash recovery closes the
// session from. Claims and acks only rewrite rows, in id order; the random-ordered session
// index changes once at a session's start and once at its end.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL UNIQUE,
  seq INTEGER NOT NULL,
  sent_seq INTEGER NOT NULL DEFAULT -1,
  closed INTEGER NOT NULL,
  writer_id INTEGER NOT NULL,
  pending_since INTEGER NOT NULL,
  claim_id TEXT,
  claimed_seq INTEGER,
  lease_until INTEGER,
  body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_pending ON sessions(id) WHERE seq > sent_seq;
-- Processes that write sessions, to recover the open sessions of those that die.
CREATE TABLE IF NOT EXISTS writers(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pid INTEGER NOT NULL, start_time INTEGER NOT NULL, host TEXT NOT NULL, started_ms INTEGER NOT NULL);
-- Records of batches the collector refused as malformed (HTTP 400).
CREATE TABLE IF NOT EXISTS dead_letters(
  id INTEGER PRIMARY KEY,
  batch_id TEXT NOT NULL, reason TEXT NOT NULL, http_status INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, body TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 2), ('dropped_records', 0), ('dropped_bytes', 0);
)sql";

// A newer update replaces the session's row; it becomes (or stays) pending.
constexpr const char* kUpsert =
    "INSERT INTO sessions(session_id, seq, closed, writer_id, pending_since, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT(session_id) DO UPDATE SET seq = excluded.seq, closed = excluded.closed, "
    "writer_id = excluded.writer_id, body = excluded.body, "
    "pending_since = CASE WHEN seq > sent_seq THEN pending_since ELSE excluded.pending_since END "
    "WHERE excluded.seq > seq";

bool is_corruption(int rc) {
  const int primary = rc & 0xFF;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

Error sqlite_error(sqlite3* db, int rc, const char* what) {
  return Error{std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc))};
}

}  // namespace

struct Spool::Impl {
  SqliteDb db;
  ino_t inode = 0;
  Statement upsert;
  Statement add_dropped;

  // What this process has in flight: the rows and the exact lines of each batch, so acks
  // touch rows by id and dead letters keep what was sent (not a newer update).
  struct InFlight {
    std::vector<int64_t> ids;
    std::vector<std::string> lines;
  };
  std::unordered_map<std::string, InFlight> in_flight;

  // BEGIN IMMEDIATE ... COMMIT, rolled back unless commit() succeeded. IMMEDIATE takes
  // the write lock up front: a deferred read-then-write transaction in WAL mode fails
  // with SQLITE_BUSY at once instead of waiting (FIELD-NOTES).
  class Transaction {
   public:
    explicit Transaction(sqlite3* db) : db_(db) { rc_ = exec_sql(db_, "BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (rc_ == SQLITE_OK && !done_) exec_sql(db_, "ROLLBACK");
    }
    int begin_rc() const { return rc_; }
    int commit() {
      const int rc = exec_sql(db_, "COMMIT");
      done_ = rc == SQLITE_OK;
      return rc;
    }

   private:
    sqlite3* db_;
    int rc_;
    bool done_ = false;
  };

  int64_t single_int(const char* sql) {
    Statement st(db.get(), sql);
    return st.ok() && st.step() == SQLITE_ROW ? st.column_int(0) : 0;
  }

  uint64_t used_bytes() {
    return static_cast<uint64_t>(single_int(
        "SELECT (p.page_count - f.freelist_count) * s.page_size "
        "FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s"));
  }

  int add_to_dropped(uint64_t records, uint64_t bytes) {
    for (auto [key, value] : {std::pair{"dropped_records", records}, std::pair{"dropped_bytes", bytes}}) {
      add_dropped.bind(1, static_cast<int64_t>(value)).bind(2, key);
      const int rc = add_dropped.step();
      add_dropped.reset();
      if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
  }

  // Frees space until the data fits under `limit`: first rows of open sessions the
  // collector already has (only their crash recovery is lost), then dead letters, then
  // the oldest pending sessions — those count as dropped. Inside the caller's transaction.
  int make_room(uint64_t limit, AppendResult& result) {
    static constexpr const char* kSteps[] = {
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE seq <= sent_seq "
        "AND claim_id IS NULL ORDER BY id LIMIT 1000) RETURNING 0, 0",
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT 1000) "
        "RETURNING 1, length(body)",
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE seq > sent_seq ORDER BY id LIMIT 1000) "
        "RETURNING 1, length(body)",
    };
    for (const char* sql : kSteps) {
      while (used_bytes() > limit) {
        Statement st(db.get(), sql);
        if (!st.ok()) return st.prepare_rc();
        uint64_t rows = 0, lost = 0, lost_bytes = 0;
        int rc;
        while ((rc = st.step()) == SQLITE_ROW) {
          ++rows;
          if (st.column_int(0)) {
            ++lost;
            lost_bytes += static_cast<uint64_t>(st.column_int(1));
          }
        }
        if (rc != SQLITE_DONE) return rc;
        if (lost) {
          result.dropped += lost;
          if (int arc = add_to_dropped(lost, lost_bytes); arc != SQLITE_OK) return arc;
        }
        if (rows == 0) break;  // this step has nothing more to give
      }
    }
    return SQLITE_OK;
  }

  // The rows of a batch: from memory when this process claimed it, else from the file.
  std::vector<int64_t> batch_ids(const std::string& batch_id) {
    if (auto it = in_flight.find(batch_id); it != in_flight.end()) return it->second.ids;
    std::vector<int64_t> ids;
    Statement st(db.get(), "SELECT id FROM sessions WHERE claim_id = ?1");
    st.bind(1, batch_id);
    while (st.step() == SQLITE_ROW) ids.push_back(st.column_int(0));
    return ids;
  }
};

Spool::Spool(SpoolOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

Spool::~Spool() {
  if (impl_ && impl_->db && writer_id_) {
    // A writer that leaves no open session behind needs no recovery: forget it.
    Statement st(impl_->db.get(),
                 "DELETE FROM writers WHERE id = ?1 AND NOT EXISTS "
                 "(SELECT 1 FROM sessions WHERE writer_id = ?1 AND closed = 0)");
    if (st.ok()) {
      st.bind(1, writer_id_);
      st.step();
    }
  }
}

Result<std::unique_ptr<Spool>> Spool::open(SpoolOptions options) {
  if (options.path.empty()) return Error{"spool path is empty"};
  std::unique_ptr<Spool> spool(new Spool(std::move(options)));
  Status s = spool->open_file();
  // A corrupt file is moved aside and a fresh one opened: the host keeps accounting.
  if (!s && spool->corrupt_) s = spool->ensure_open();
  if (!s) return Error{s.error()};
  return spool;
}

// Opens (or creates) the file, applies pragmas and schema, registers this process as
// a writer. Corruption is noted for ensure_open(), which moves the file aside.
Status Spool::open_file() {
  impl_ = std::make_unique<Impl>();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(options_.path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  impl_->db.reset(raw);
  if (rc != SQLITE_OK) return sqlite_error(raw, rc, ("cannot open spool " + options_.path).c_str());
  sqlite3_busy_timeout(raw, static_cast<int>(options_.busy_timeout.count()));
  sqlite3_extended_result_codes(raw, 1);

  // 16 MiB of page cache keeps the session index of a large backlog in memory.
  rc = exec_sql(raw, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;");
  // Switching a new file to WAL needs a moment of exclusivity; every nginx worker opens the
  // spool at the same instant, and this pragma may answer BUSY without waiting: retry.
  for (int attempt = 0; rc == SQLITE_OK && attempt < 250; ++attempt) {
    const int wal_rc = exec_sql(raw, "PRAGMA journal_mode=WAL");
    if ((wal_rc & 0xFF) != SQLITE_BUSY && (wal_rc & 0xFF) != SQLITE_LOCKED) {
      rc = wal_rc;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (rc != SQLITE_OK) return handle_error(rc, "cannot initialize spool");
  {
    // Schema, server id and writer registration in one IMMEDIATE transaction: a deferred
    // read-then-write would fail at once (no busy wait) when another process created the
    // tables in between.
    Impl::Transaction tx(raw);
    if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot initialize spool");
    if ((rc = exec_sql(raw, kSchema)) != SQLITE_OK) return handle_error(rc, "cannot initialize spool");
    // Read every table once: damage in their pages shows here, not in the middle of work.
    rc = exec_sql(raw, "SELECT count(*), sum(length(body)) FROM sessions; "
                       "SELECT count(*), sum(length(body)) FROM dead_letters;");
    if (rc != SQLITE_OK) return handle_error(rc, "cannot initialize spool");
    // server_id: generated once, kept in the file.
    const std::string generated = make_uuid_v4();
    Statement ins(raw, "INSERT OR IGNORE INTO meta(key, value) VALUES('server_id', ?1)");
    ins.bind(1, generated);
    if ((rc = ins.step()) != SQLITE_DONE) return handle_error(rc, "cannot store server_id");
    Statement sel(raw, "SELECT value FROM meta WHERE key = 'server_id'");
    if ((rc = sel.step()) != SQLITE_ROW) return handle_error(rc, "cannot read server_id");
    server_id_ = sel.column_text(0);
    const ProcessIdentity me = ProcessIdentity::self();
    Statement writer(raw, "INSERT INTO writers(pid, start_time, host, started_ms) VALUES(?1, ?2, ?3, ?4)");
    writer.bind(1, me.pid).bind(2, static_cast<int64_t>(me.start_time)).bind(3, me.host).bind(4, now_ms());
    if ((rc = writer.step()) != SQLITE_DONE) return handle_error(rc, "cannot register writer");
    writer_id_ = sqlite3_last_insert_rowid(raw);
    ins = Statement();
    sel = Statement();
    writer = Statement();
    if ((rc = tx.commit()) != SQLITE_OK) return handle_error(rc, "cannot initialize spool");
  }

  struct stat st {};
  if (::stat(options_.path.c_str(), &st) == 0) impl_->inode = st.st_ino;

  if (Status s = prepare(); !s) return s;
  return Status::Ok();
}

Status Spool::prepare() {
  sqlite3* db = impl_->db.get();
  impl_->upsert = Statement(db, kUpsert);
  impl_->add_dropped = Statement(db, "UPDATE meta SET value = value + ?1 WHERE key = ?2");
  for (const Statement* st : {&impl_->upsert, &impl_->add_dropped})
    if (!st->ok()) return handle_error(st->prepare_rc(), "cannot prepare spool statements");
  return Status::Ok();
}

Error Spool::handle_error(int rc, const char* what) {
  Error error = sqlite_error(impl_->db.get(), rc, what);
  if (is_corruption(rc)) {
    corrupt_ = true;  // acted upon by the next ensure_open(), once no statement is live
    error.message = "spool is corrupt: " + error.message;
  }
  return error;
}

Status Spool::ensure_open() {
  if (corrupt_) {
    corrupt_ = false;
    // Move the unreadable file (and its WAL/SHM) aside and start afresh; an operator
    // can inspect the old file.
    impl_ = std::make_unique<Impl>();
    const std::string aside = options_.path + ".corrupt-" + std::to_string(now_ms());
    std::error_code ec;
    std::filesystem::rename(options_.path, aside, ec);
    for (const char* suffix : {"-wal", "-shm"}) std::filesystem::rename(options_.path + suffix, aside + suffix, ec);
    log(LogLevel::Error, "spool " + options_.path + " is corrupt; moved it to " + aside + " and started a fresh spool");
    return open_file();
  }
  // Another process may have moved the file aside: follow the path, not the inode.
  struct stat st {};
  if (!impl_->db || ::stat(options_.path.c_str(), &st) != 0 || st.st_ino != impl_->inode) return open_file();
  return Status::Ok();
}

Result<AppendResult> Spool::append(std::span<const SessionRecord> records) {
  // Encode before taking the lock: an uploader's claim need not wait for it.
  uint64_t incoming = 0;
  std::vector<std::string> bodies;
  bodies.reserve(records.size());
  for (const SessionRecord& r : records) {
    bodies.push_back(encode_record(r));
    incoming += bodies.back().size() + 64;
  }

  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  AppendResult result;

  auto attempt = [&]() -> int {
    Impl::Transaction tx(impl_->db.get());
    if (tx.begin_rc() != SQLITE_OK) return tx.begin_rc();
    AppendResult local;
    if (impl_->used_bytes() + incoming > options_.max_bytes) {
      const uint64_t limit = options_.max_bytes > incoming ? options_.max_bytes - incoming : 0;
      if (int rc = impl_->make_room(limit, local); rc != SQLITE_OK) return rc;
    }
    const int64_t created = now_ms();
    for (std::size_t i = 0; i < records.size(); ++i) {
      const SessionRecord& r = records[i];
      Statement& up = impl_->upsert;
      up.bind_static(1, r.session_id).bind(2, r.seq).bind(3, r.state == SessionState::Closed ? 1 : 0);
      up.bind(4, writer_id_).bind(5, created).bind_static(6, bodies[i]);
      const int rc = up.step();
      up.reset();
      if (rc != SQLITE_DONE) return rc;
    }
    if (int rc = tx.commit(); rc != SQLITE_OK) return rc;
    result.dropped = local.dropped;
    result.appended = records.size();
    return SQLITE_OK;
  };

  int rc = attempt();
  if ((rc & 0xFF) == SQLITE_FULL) {
    // The disk (not our cap) is full: free a tenth of what we hold and try once more.
    {
      Impl::Transaction tx(impl_->db.get());
      AppendResult freed;
      if (tx.begin_rc() == SQLITE_OK && impl_->make_room(impl_->used_bytes() * 9 / 10, freed) == SQLITE_OK &&
          tx.commit() == SQLITE_OK)
        result.dropped += freed.dropped;
    }
    rc = attempt();
    if ((rc & 0xFF) == SQLITE_FULL) {
      // Still no room: these records are lost; say so, never block the host.
      result.dropped += records.size();
      uint64_t lost_bytes = 0;
      for (const auto& b : bodies) lost_bytes += b.size();
      impl_->add_to_dropped(records.size(), lost_bytes);
      log(LogLevel::Error,
          "spool " + options_.path + ": disk full, dropped " + std::to_string(records.size()) + " records");
      return result;
    }
  }
  if (rc != SQLITE_OK) return handle_error(rc, "cannot append to spool");
  return result;
}

Result<AppendResult> Spool::append_lines(std::span<const std::string> lines) {
  std::vector<SessionRecord> records;
  records.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto r = decode_record(lines[i]);
    if (!r) return Error{"line " + std::to_string(i + 1) + ": " + r.error()};
    records.push_back(std::move(r).value());
  }
  return append(records);
}

Result<std::optional<ClaimedBatch>> Spool::claim(std::size_t max_records, std::chrono::milliseconds lease) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Impl::Transaction tx(impl_->db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot claim a batch");
  const int64_t now = now_ms();
  ClaimedBatch batch;
  batch.batch_id = make_uuid_v4();
  Statement st(impl_->db.get(),
               "UPDATE sessions SET claim_id = ?1, lease_until = ?2, claimed_seq = seq WHERE id IN "
               "(SELECT id FROM sessions WHERE seq > sent_seq AND (claim_id IS NULL OR lease_until < ?3) "
               "ORDER BY id LIMIT ?4) RETURNING id, body, pending_since");
  st.bind(1, batch.batch_id).bind(2, now + lease.count()).bind(3, now).bind(4, static_cast<int64_t>(max_records));
  int rc;
  batch.oldest_created_ms = now;
  Impl::InFlight flight;
  while ((rc = st.step()) == SQLITE_ROW) {
    flight.ids.push_back(st.column_int(0));
    batch.lines.push_back(st.column_text(1));
    batch.oldest_created_ms = std::min(batch.oldest_created_ms, st.column_int(2));
  }
  if (rc != SQLITE_DONE) return handle_error(rc, "cannot claim a batch");
  if ((rc = tx.commit()) != SQLITE_OK) return handle_error(rc, "cannot claim a batch");
  if (batch.lines.empty()) return std::optional<ClaimedBatch>{};
  flight.lines = batch.lines;
  impl_->in_flight.emplace(batch.batch_id, std::move(flight));
  return std::optional<ClaimedBatch>{std::move(batch)};
}

// Ends a batch: its rows are delivered up to the seq that was sent (ack, dead letter) or
// not at all (release). Closed sessions the collector has in full are deleted.
Status Spool::finish_batch(const std::string& batch_id, bool delivered, const char* what) {
  Impl::Transaction tx(impl_->db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), what);
  Statement mark(impl_->db.get(),
                 delivered ? "UPDATE sessions SET sent_seq = max(sent_seq, claimed_seq), claim_id = NULL, "
                             "lease_until = NULL, claimed_seq = NULL WHERE id = ?1 AND claim_id = ?2"
                           : "UPDATE sessions SET claim_id = NULL, lease_until = NULL, claimed_seq = NULL "
                             "WHERE id = ?1 AND claim_id = ?2");
  Statement drop(impl_->db.get(), "DELETE FROM sessions WHERE id = ?1 AND closed = 1 AND seq <= sent_seq");
  for (int64_t id : impl_->batch_ids(batch_id)) {
    mark.bind(1, id).bind(2, batch_id);
    int rc = mark.step();
    mark.reset();
    if (rc != SQLITE_DONE) return handle_error(rc, what);
    if (!delivered) continue;
    drop.bind(1, id);
    rc = drop.step();
    drop.reset();
    if (rc != SQLITE_DONE) return handle_error(rc, what);
  }
  if (int rc = tx.commit(); rc != SQLITE_OK) return handle_error(rc, what);
  impl_->in_flight.erase(batch_id);
  return Status::Ok();
}

Status Spool::ack(const std::string& batch_id) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return s;
  return finish_batch(batch_id, true, "cannot acknowledge a batch");
}

Status Spool::release(const std::string& batch_id) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return s;
  return finish_batch(batch_id, false, "cannot release a batch");
}

Status Spool::dead_letter(const std::string& batch_id, const std::string& reason, int http_status) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return s;
  // Keep exactly what was sent; without this process's memory of it (it claimed the batch
  // before a restart), the rows' current bodies are the best there is.
  std::vector<std::string> lines;
  if (auto it = impl_->in_flight.find(batch_id); it != impl_->in_flight.end()) {
    lines = it->second.lines;
  } else {
    Statement st(impl_->db.get(), "SELECT body FROM sessions WHERE claim_id = ?1 ORDER BY id");
    st.bind(1, batch_id);
    while (st.step() == SQLITE_ROW) lines.push_back(st.column_text(0));
  }
  {
    Impl::Transaction tx(impl_->db.get());
    if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot dead-letter a batch");
    Statement ins(impl_->db.get(),
                  "INSERT INTO dead_letters(batch_id, reason, http_status, created_ms, body) VALUES(?1, ?2, ?3, ?4, ?5)");
    const int64_t now = now_ms();
    for (const std::string& line : lines) {
      ins.bind(1, batch_id).bind(2, reason).bind(3, http_status).bind(4, now).bind(5, line);
      const int rc = ins.step();
      ins.reset();
      if (rc != SQLITE_DONE) return handle_error(rc, "cannot dead-letter a batch");
    }
    if (int rc = tx.commit(); rc != SQLITE_OK) return handle_error(rc, "cannot dead-letter a batch");
  }
  // The refused versions count as handled: they are not sent again (a newer update is).
  return finish_batch(batch_id, true, "cannot dead-letter a batch");
}

Result<std::vector<DeadLetter>> Spool::dead_letters() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Statement st(impl_->db.get(),
               "SELECT id, batch_id, reason, http_status, created_ms, body FROM dead_letters ORDER BY id");
  std::vector<DeadLetter> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW)
    out.push_back(DeadLetter{st.column_int(0), st.column_text(1), st.column_text(2),
                             static_cast<int>(st.column_int(3)), st.column_int(4), st.column_text(5)});
  if (rc != SQLITE_DONE) return handle_error(rc, "cannot list dead letters");
  return out;
}

Result<std::size_t> Spool::requeue_dead_letters() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Impl::Transaction tx(impl_->db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot requeue dead letters");
  std::vector<std::pair<int64_t, std::string>> letters;
  {
    Statement st(impl_->db.get(), "SELECT id, body FROM dead_letters ORDER BY id");
    while (st.step() == SQLITE_ROW) letters.emplace_back(st.column_int(0), st.column_text(1));
  }
  // Pending again, unless the session has a newer update (which will be sent anyway).
  Statement put(impl_->db.get(),
                "INSERT INTO sessions(session_id, seq, closed, writer_id, pending_since, body) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(session_id) DO UPDATE SET seq = excluded.seq, "
                "closed = excluded.closed, body = excluded.body, sent_seq = -1, pending_since = excluded.pending_since "
                "WHERE excluded.seq >= seq");
  Statement del(impl_->db.get(), "DELETE FROM dead_letters WHERE id = ?1");
  std::size_t requeued = 0;
  const int64_t now = now_ms();
  for (const auto& [id, body] : letters) {
    if (auto r = decode_record(body)) {
      put.bind(1, r->session_id).bind(2, r->seq).bind(3, r->state == SessionState::Closed ? 1 : 0);
      put.bind(4, writer_id_).bind(5, now).bind(6, body);
      const int rc = put.step();
      put.reset();
      if (rc != SQLITE_DONE) return handle_error(rc, "cannot requeue dead letters");
    }
    // An undecodable letter goes back as it is: the collector will refuse it again.
    del.bind(1, id);
    const int rc = del.step();
    del.reset();
    if (rc != SQLITE_DONE) return handle_error(rc, "cannot requeue dead letters");
    ++requeued;
  }
  if (int rc = tx.commit(); rc != SQLITE_OK) return handle_error(rc, "cannot requeue dead letters");
  return requeued;
}

Result<std::size_t> Spool::purge_dead_letters() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Statement del(impl_->db.get(), "DELETE FROM dead_letters");
  if (int rc = del.step(); rc != SQLITE_DONE) return handle_error(rc, "cannot purge dead letters");
  return static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
}

Result<std::vector<std::string>> Spool::pending_lines() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Statement st(impl_->db.get(), "SELECT body FROM sessions WHERE seq > sent_seq ORDER BY id");
  std::vector<std::string> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(st.column_text(0));
  if (rc != SQLITE_DONE) return handle_error(rc, "cannot read pending records");
  return out;
}

Result<std::size_t> Spool::recover_dead_writers() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  // One transaction: two processes recovering at once cannot both close a session.
  Impl::Transaction tx(impl_->db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot recover sessions");
  std::vector<int64_t> dead;
  {
    Statement st(impl_->db.get(), "SELECT id, pid, start_time, host FROM writers WHERE id != ?1");
    st.bind(1, writer_id_);
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      ProcessIdentity who{static_cast<pid_t>(st.column_int(1)), static_cast<uint64_t>(st.column_int(2)),
                          st.column_text(3)};
      if (!who.alive()) dead.push_back(st.column_int(0));
    }
    if (rc != SQLITE_DONE) return handle_error(rc, "cannot recover sessions");
  }
  std::vector<SessionRecord> closes;
  for (int64_t writer : dead) {
    Statement st(impl_->db.get(), "SELECT body FROM sessions WHERE writer_id = ?1 AND closed = 0");
    st.bind(1, writer);
    while (st.step() == SQLITE_ROW) {
      auto last = decode_record(st.column_text(0));
      if (!last) continue;  // unreadable row: nothing to recover from
      SessionRecord r = std::move(last).value();
      // Closed from its last saved update: the bytes and time we know for sure.
      r.seq += 1;
      r.state = SessionState::Closed;
      r.ended_at = r.updated_at;
      r.end_reason = EndReason::Recovered;
      closes.push_back(std::move(r));
    }
  }
  const int64_t now = now_ms();
  for (const SessionRecord& r : closes) {
    const std::string body = encode_record(r);
    Statement& up = impl_->upsert;
    up.bind(1, r.session_id).bind(2, r.seq).bind(3, 1).bind(4, writer_id_).bind(5, now).bind(6, body);
    const int rc = up.step();
    up.reset();
    if (rc != SQLITE_DONE) return handle_error(rc, "cannot recover sessions");
  }
  for (int64_t writer : dead) {
    Statement st(impl_->db.get(), "DELETE FROM writers WHERE id = ?1");
    st.bind(1, writer);
    if (int rc = st.step(); rc != SQLITE_DONE) return handle_error(rc, "cannot recover sessions");
  }
  if (int rc = tx.commit(); rc != SQLITE_OK) return handle_error(rc, "cannot recover sessions");
  if (!closes.empty())
    log(LogLevel::Warn, "spool " + options_.path + ": recovered " + std::to_string(closes.size()) +
                            " sessions of " + std::to_string(dead.size()) + " writers that died");
  return closes.size();
}

Result<SpoolStats> Spool::stats() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  SpoolStats s;
  Statement st(impl_->db.get(),
               "SELECT (SELECT count(*) FROM sessions WHERE seq > sent_seq), "
               "(SELECT count(*) FROM sessions WHERE seq > sent_seq AND claim_id IS NOT NULL AND lease_until >= ?1), "
               "(SELECT count(*) FROM dead_letters), (SELECT value FROM meta WHERE key = 'dropped_records'), "
               "(SELECT value FROM meta WHERE key = 'dropped_bytes'), "
               "(SELECT min(pending_since) FROM sessions WHERE seq > sent_seq), "
               "(SELECT count(*) FROM sessions WHERE closed = 0)");
  st.bind(1, now_ms());
  if (int rc = st.step(); rc != SQLITE_ROW) return handle_error(rc, "cannot read spool stats");
  s.pending = static_cast<uint64_t>(st.column_int(0));
  s.claimed = static_cast<uint64_t>(st.column_int(1));
  s.dead_letters = static_cast<uint64_t>(st.column_int(2));
  s.dropped_records = static_cast<uint64_t>(st.column_int(3));
  s.dropped_bytes = static_cast<uint64_t>(st.column_int(4));
  if (!st.column_is_null(5)) s.oldest_pending_ms = st.column_int(5);
  s.open_sessions = static_cast<uint64_t>(st.column_int(6));
  s.bytes = impl_->used_bytes();
  return s;
}

}  // namespace streamtally
