#include "streamtally/spool.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
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

// One row per session in `sessions`: its latest update (`seq`, `body`), the snapshot crash
// recovery closes the session from. `pending` is the send queue: one narrow row per session
// whose latest update the collector has not acknowledged, so a newer update simply replaces
// an unsent one (coalescing). A claim writes one small `claims` row (the batch's row ids and
// its lease) and rewrites nothing; an ack deletes the batch's queue rows — a few pages,
// where marking the wide session rows would rewrite every page that holds them. Closed
// sessions the collector has in full leave `sessions` in bulk (see Impl::sweep_delivered).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL UNIQUE,
  seq INTEGER NOT NULL,
  closed INTEGER NOT NULL,
  writer_id INTEGER NOT NULL,
  body TEXT NOT NULL);
-- id = sessions.id; `seq` is the update waiting to be sent, pending since `since` (ms).
CREATE TABLE IF NOT EXISTS pending(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, since INTEGER NOT NULL);
-- Batches leased to an uploader: `ids` are the session rows it holds (int64 array, native
-- byte order: the file never leaves the machine) until lease_until.
CREATE TABLE IF NOT EXISTS claims(
  batch_id TEXT PRIMARY KEY, lease_until INTEGER NOT NULL, ids BLOB NOT NULL);
-- Processes that write sessions, to recover the open sessions of those that die.
CREATE TABLE IF NOT EXISTS writers(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pid INTEGER NOT NULL, start_time INTEGER NOT NULL, host TEXT NOT NULL, started_ms INTEGER NOT NULL);
-- Records of batches the collector refused as malformed (HTTP 400).
CREATE TABLE IF NOT EXISTS dead_letters(
  id INTEGER PRIMARY KEY,
  batch_id TEXT NOT NULL, reason TEXT NOT NULL, http_status INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, body TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 3), ('dropped_records', 0), ('dropped_bytes', 0);
)sql";

// Schema version 2 kept the send state (sent_seq, pending_since, claim columns) in the
// session rows themselves. Its table is set aside, kSchema creates the new one, the rows are
// copied and the pending ones queued (kMigrateFromV2Rows).
constexpr const char* kMigrateFromV2SetAside = "ALTER TABLE sessions RENAME TO sessions_v2;";
constexpr const char* kMigrateFromV2Rows = R"sql(
INSERT INTO sessions SELECT id, session_id, seq, closed, writer_id, body FROM sessions_v2;
INSERT INTO pending SELECT id, seq, pending_since FROM sessions_v2 WHERE seq > sent_seq;
DROP TABLE sessions_v2;
UPDATE meta SET value = 3 WHERE key = 'schema_version';
)sql";

// Storing an update: a new session is inserted; otherwise a newer update replaces the
// session's row (`allow_same`: also the same seq, for dead letters put back), and the row is
// queued. Three plain statements, not one upsert with RETURNING: SQLite builds a temporary
// table for RETURNING, which cost more than the two extra index probes of an update.
constexpr const char* kInsertSession =
    "INSERT INTO sessions(session_id, seq, closed, writer_id, body) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(session_id) DO NOTHING";
constexpr const char* kUpdateSession =
    "UPDATE sessions SET seq = ?2, closed = ?3, writer_id = ?4, body = ?5 WHERE session_id = ?1 AND "
    "(seq < ?2 OR (?6 AND seq = ?2))";
// Queued, or the queued update replaced; it keeps waiting since it first waited.
constexpr const char* kEnqueue =
    "INSERT INTO pending(id, seq, since) VALUES(?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq";

// When delivered closed sessions leave the file (Impl::sweep_delivered): deleting a wide
// row with its index entry costs about as much as storing it, so a backlog drains first
// and is swept after: the uploader calls sweep_delivered() once the spool is drained. An
// ack sweeps up to kSweepRows of what this process delivered when it has that many while
// it keeps up (its last claim was short: neither a backlog nor drained), or once it has
// kMaxUnswept in any case (the file never holds much more garbage than that).
constexpr std::size_t kSweepRows = 16384;
constexpr std::size_t kMaxUnswept = 262144;

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
  // Prepared once: they run for every record or every batch.
  Statement insert_session;
  Statement update_session;
  Statement session_row;
  Statement enqueue;
  Statement add_dropped;
  Statement expire_claims;
  Statement leased_ids;
  Statement first_pending_ids;
  Statement pending_rows;
  Statement insert_claim;
  Statement delete_claim;
  Statement dequeue;
  Statement queued_in_range;
  Statement dequeue_range;
  Statement drop_delivered;
  Statement sweep_all_delivered;
  // Closed sessions this process saw delivered and has not swept yet.
  std::vector<int64_t> delivered_closed;
  enum class LastClaim { Empty, Short, Full } last_claim = LastClaim::Empty;
  // A claim's buffer is sized from the last claim's bytes per record (up to 4 MiB), so it
  // is not regrown (and copied) a dozen times while it fills.
  std::size_t line_bytes = 512;

  // What this process has in flight: per batch the rows, the seq each row had when it
  // was claimed (what the collector gets) and whether that update closed the session, so
  // acks touch rows by id. Only the claiming process can end a batch: its lease ends
  // otherwise.
  struct InFlight {
    std::vector<int64_t> ids;
    std::vector<int64_t> seqs;
    std::vector<char> closed;
  };
  std::unordered_map<std::string, InFlight> in_flight;

  // Dequeues what a delivered batch sent: each row, unless a newer update of its session
  // was queued since (its seq is higher then). A batch's ids ascend (claimed in id
  // order); when every queued row between its first and last id is one of them and was
  // sent, one range delete does it (half the cost of a delete per row), else row by row.
  int dequeue_delivered(const InFlight& flight) {
    if (flight.ids.empty()) return SQLITE_DONE;
    const int64_t lo = flight.ids.front(), hi = flight.ids.back();
    queued_in_range.bind(1, lo).bind(2, hi);
    bool whole_range = true;
    std::size_t i = 0;
    int rc;
    while (whole_range && (rc = queued_in_range.step_rc()) == SQLITE_ROW) {
      const int64_t id = queued_in_range.int64(0);
      while (i < flight.ids.size() && flight.ids[i] < id) ++i;
      whole_range = i < flight.ids.size() && flight.ids[i] == id && queued_in_range.int64(1) <= flight.seqs[i];
    }
    queued_in_range.reset();
    if (whole_range && rc != SQLITE_DONE) return rc;
    if (whole_range) {
      dequeue_range.bind(1, lo).bind(2, hi);
      return dequeue_range.step_and_reset();
    }
    for (std::size_t k = 0; k < flight.ids.size(); ++k) {
      dequeue.bind(1, flight.ids[k]).bind(2, flight.seqs[k]);
      if ((rc = dequeue.step_and_reset()) != SQLITE_DONE) return rc;
    }
    return SQLITE_DONE;
  }

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
    return st.ok() && st.step_rc() == SQLITE_ROW ? st.int64(0) : 0;
  }

  uint64_t used_bytes() {
    return static_cast<uint64_t>(single_int(
        "SELECT (p.page_count - f.freelist_count) * s.page_size "
        "FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s"));
  }

  int add_to_dropped(uint64_t records, uint64_t bytes) {
    for (auto [key, value] : {std::pair{"dropped_records", records}, std::pair{"dropped_bytes", bytes}}) {
      add_dropped.bind(1, static_cast<int64_t>(value)).bind(2, key);
      const int rc = add_dropped.step_and_reset();
      if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
  }

  // Stores an update of a session and queues it for sending, unless the file already has
  // a newer one (`allow_same`: or the same). SQLITE_DONE when done.
  int put(const SessionRecord& r, std::string_view body, int64_t writer, int64_t since, bool allow_same = false) {
    const int closed = r.state == SessionState::Closed ? 1 : 0;
    insert_session.bind_static(1, r.session_id).bind(2, r.seq).bind(3, closed).bind(4, writer).bind_static(5, body);
    int rc = insert_session.step_and_reset();
    if (rc != SQLITE_DONE) return rc;
    int64_t id = 0;
    if (sqlite3_changes(db.get()) == 1) {
      id = sqlite3_last_insert_rowid(db.get());
    } else {
      update_session.bind_static(1, r.session_id).bind(2, r.seq).bind(3, closed).bind(4, writer);
      update_session.bind_static(5, body).bind(6, allow_same ? 1 : 0);
      if ((rc = update_session.step_and_reset()) != SQLITE_DONE) return rc;
      if (sqlite3_changes(db.get()) == 0) return SQLITE_DONE;  // the file has a newer update
      session_row.bind_static(1, r.session_id);
      rc = session_row.step_rc();
      id = rc == SQLITE_ROW ? session_row.int64(0) : 0;
      session_row.reset();
      if (rc != SQLITE_ROW) return rc;
    }
    enqueue.bind(1, id).bind(2, r.seq).bind(3, since);
    return enqueue.step_and_reset();
  }

  // Deletes up to kSweepRows of the closed sessions this process saw delivered, oldest
  // first (unless queued again since). Not done row by row at ack: each delete touches a
  // random page of the session_id index, so one sweep of many rows writes each index page
  // once where single deletes would write it once per row.
  int sweep_delivered() {
    std::sort(delivered_closed.begin(), delivered_closed.end());
    const std::size_t n = std::min(delivered_closed.size(), kSweepRows);
    for (std::size_t i = 0; i < n; ++i) {
      drop_delivered.bind(1, delivered_closed[i]);
      const int rc = drop_delivered.step_and_reset();
      if (rc != SQLITE_DONE) return rc;
    }
    delivered_closed.erase(delivered_closed.begin(), delivered_closed.begin() + static_cast<std::ptrdiff_t>(n));
    return SQLITE_DONE;
  }

  // Frees space until the data fits under `limit`: first rows of sessions the collector
  // already has (of open ones only their crash recovery is lost), then dead letters, then
  // the oldest pending sessions — those count as dropped. Inside the caller's transaction.
  int make_room(uint64_t limit, AppendResult& result) {
    static constexpr const char* kSteps[] = {
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE id NOT IN (SELECT id FROM pending) "
        "ORDER BY id LIMIT 1000) RETURNING 0, 0",
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT 1000) "
        "RETURNING 1, length(body)",
        // Their queue rows are deleted right after (below).
        "DELETE FROM sessions WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT 1000) "
        "RETURNING 1, length(body)",
    };
    for (const char* sql : kSteps) {
      while (used_bytes() > limit) {
        Statement st(db.get(), sql);
        if (!st.ok()) return st.prepare_rc();
        uint64_t rows = 0, lost = 0, lost_bytes = 0;
        int rc;
        while ((rc = st.step_rc()) == SQLITE_ROW) {
          ++rows;
          if (st.int64(0)) {
            ++lost;
            lost_bytes += static_cast<uint64_t>(st.int64(1));
          }
        }
        if (rc != SQLITE_DONE) return rc;
        if (sql == kSteps[2] && (rc = exec_sql(db.get(), "DELETE FROM pending WHERE id IN (SELECT id FROM pending "
                                                         "ORDER BY id LIMIT 1000) AND id NOT IN "
                                                         "(SELECT id FROM sessions)")) != SQLITE_OK)
          return rc;
        if (lost) {
          result.dropped += lost;
          if (int arc = add_to_dropped(lost, lost_bytes); arc != SQLITE_OK) return arc;
        }
        if (rows == 0) break;  // this step has nothing more to give
      }
    }
    return SQLITE_OK;
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
      st.step_rc();
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
    {
      Statement version(raw, "SELECT value FROM meta WHERE key = 'schema_version'");
      if ((rc = version.step_rc()) != SQLITE_ROW) return handle_error(rc, "cannot read the spool's schema version");
      const int64_t v = version.int64(0);
      version = Statement();
      if (v == 2) {
        for (const char* step : {kMigrateFromV2SetAside, kSchema, kMigrateFromV2Rows})
          if ((rc = exec_sql(raw, step)) != SQLITE_OK)
            return handle_error(rc, "cannot migrate the spool from schema version 2");
      }
      if (v > 3) return Error{"spool " + options_.path + " has schema version " + std::to_string(v) +
                              ", newer than this build understands (3)"};
    }
    // Read every table once: damage in their pages shows here, not in the middle of work.
    rc = exec_sql(raw, "SELECT count(*), sum(length(body)) FROM sessions; "
                       "SELECT count(*), sum(length(body)) FROM dead_letters;");
    if (rc != SQLITE_OK) return handle_error(rc, "cannot initialize spool");
    // server_id: generated once, kept in the file.
    const std::string generated = make_uuid_v4();
    Statement ins(raw, "INSERT OR IGNORE INTO meta(key, value) VALUES('server_id', ?1)");
    ins.bind(1, generated);
    if ((rc = ins.step_rc()) != SQLITE_DONE) return handle_error(rc, "cannot store server_id");
    Statement sel(raw, "SELECT value FROM meta WHERE key = 'server_id'");
    if ((rc = sel.step_rc()) != SQLITE_ROW) return handle_error(rc, "cannot read server_id");
    server_id_ = sel.text(0);
    const ProcessIdentity me = ProcessIdentity::self();
    Statement writer(raw, "INSERT INTO writers(pid, start_time, host, started_ms) VALUES(?1, ?2, ?3, ?4)");
    writer.bind(1, me.pid).bind(2, static_cast<int64_t>(me.start_time)).bind(3, me.host).bind(4, now_ms());
    if ((rc = writer.step_rc()) != SQLITE_DONE) return handle_error(rc, "cannot register writer");
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
  Impl& im = *impl_;
  im.insert_session = Statement(db, kInsertSession);
  im.update_session = Statement(db, kUpdateSession);
  im.session_row = Statement(db, "SELECT id FROM sessions WHERE session_id = ?1");
  im.enqueue = Statement(db, kEnqueue);
  im.add_dropped = Statement(db, "UPDATE meta SET value = value + ?1 WHERE key = ?2");
  im.expire_claims = Statement(db, "DELETE FROM claims WHERE lease_until < ?1");
  im.leased_ids = Statement(db, "SELECT ids FROM claims");
  // A claim joins the wide session rows from the first queued id no batch holds: the
  // rows other batches hold come first in id order (with two requests in flight, two
  // batches' worth), and joining them too cost as much as the claim itself.
  im.first_pending_ids = Statement(db, "SELECT id FROM pending ORDER BY id");
  im.pending_rows = Statement(db,
                              "SELECT p.id, s.seq, s.closed, s.body, p.since FROM pending p JOIN sessions s "
                              "ON s.id = p.id WHERE p.id >= ?2 ORDER BY p.id LIMIT ?1");
  im.insert_claim = Statement(db, "INSERT INTO claims(batch_id, lease_until, ids) VALUES(?1, ?2, ?3)");
  im.delete_claim = Statement(db, "DELETE FROM claims WHERE batch_id = ?1");
  // A newer update that arrived while the batch was in flight stays queued.
  im.dequeue = Statement(db, "DELETE FROM pending WHERE id = ?1 AND seq <= ?2");
  im.queued_in_range = Statement(db, "SELECT id, seq FROM pending WHERE id BETWEEN ?1 AND ?2");
  im.dequeue_range = Statement(db, "DELETE FROM pending WHERE id BETWEEN ?1 AND ?2");
  im.drop_delivered = Statement(db,
                                "DELETE FROM sessions WHERE id = ?1 AND closed = 1 AND "
                                "NOT EXISTS (SELECT 1 FROM pending WHERE id = ?1)");
  im.sweep_all_delivered = Statement(db,
                                     "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE closed = 1 "
                                     "AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.id = sessions.id) "
                                     "ORDER BY id LIMIT ?1)");
  for (const Statement* st : {&im.insert_session, &im.update_session, &im.session_row, &im.enqueue, &im.add_dropped,
                              &im.expire_claims, &im.leased_ids, &im.first_pending_ids, &im.pending_rows, &im.insert_claim,
                              &im.delete_claim, &im.dequeue, &im.queued_in_range, &im.dequeue_range, &im.drop_delivered,
                              &im.sweep_all_delivered})
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
    for (std::size_t i = 0; i < records.size(); ++i)
      if (int rc = impl_->put(records[i], bodies[i], writer_id_, created); rc != SQLITE_DONE) return rc;
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
  Impl& im = *impl_;
  auto fail = [&](Statement& st, int rc) {
    st.reset();
    return handle_error(rc, "cannot claim a batch");
  };

  // Rows leased by live batches (anyone's) are skipped; a lease that expired (its uploader
  // died or gave up) frees its rows first.
  im.expire_claims.bind(1, now);
  if (int rc = im.expire_claims.step_rc(); rc != SQLITE_DONE) return fail(im.expire_claims, rc);
  im.expire_claims.reset();
  std::vector<int64_t> leased;
  int rc;
  while ((rc = im.leased_ids.step_rc()) == SQLITE_ROW) {
    const std::string_view blob = im.leased_ids.blob(0);
    const std::size_t first = leased.size();
    leased.resize(first + blob.size() / sizeof(int64_t));
    std::memcpy(leased.data() + first, blob.data(), (leased.size() - first) * sizeof(int64_t));
  }
  if (rc != SQLITE_DONE) return fail(im.leased_ids, rc);
  im.leased_ids.reset();
  std::sort(leased.begin(), leased.end());

  ClaimedBatch batch;
  batch.oldest_created_ms = now;
  Impl::InFlight flight;
  std::vector<std::size_t> line_ends;  // the views are made once the buffer stops growing
  line_ends.reserve(max_records);
  batch.ndjson.reserve(std::min<std::size_t>(max_records * (im.line_bytes + 1), 4u << 20));  // beyond: doubling
  // The leased rows before the first free one are skipped on the narrow queue; any
  // leased row after it may still come first in id order: ask for that many more.
  int64_t first_free = 0;
  std::size_t leased_before = 0;
  while ((rc = im.first_pending_ids.step_rc()) == SQLITE_ROW) {
    first_free = im.first_pending_ids.int64(0);
    if (!std::binary_search(leased.begin(), leased.end(), first_free)) break;
    ++leased_before;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(im.first_pending_ids, rc);
  im.first_pending_ids.reset();
  if (rc == SQLITE_DONE) first_free = std::numeric_limits<int64_t>::max();  // every queued row is leased
  im.pending_rows.bind(1, static_cast<int64_t>(max_records + leased.size() - leased_before)).bind(2, first_free);
  while (flight.ids.size() < max_records && (rc = im.pending_rows.step_rc()) == SQLITE_ROW) {
    const int64_t id = im.pending_rows.int64(0);
    if (std::binary_search(leased.begin(), leased.end(), id)) continue;
    flight.ids.push_back(id);
    flight.seqs.push_back(im.pending_rows.int64(1));
    flight.closed.push_back(im.pending_rows.int64(2) != 0);
    const std::string_view line = im.pending_rows.text_view(3);
    batch.ndjson.insert(batch.ndjson.end(), line.begin(), line.end());
    line_ends.push_back(batch.ndjson.size());
    batch.ndjson.push_back('\n');
    batch.oldest_created_ms = std::min(batch.oldest_created_ms, im.pending_rows.int64(4));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(im.pending_rows, rc);
  im.pending_rows.reset();

  batch.lines.reserve(line_ends.size());
  for (std::size_t i = 0, begin = 0; i < line_ends.size(); begin = line_ends[i++] + 1)
    batch.lines.emplace_back(batch.ndjson.data() + begin, line_ends[i] - begin);
  if (!line_ends.empty()) im.line_bytes = batch.ndjson.size() / line_ends.size() + 16;
  im.last_claim = batch.lines.empty()                   ? Impl::LastClaim::Empty
                  : batch.lines.size() >= max_records ? Impl::LastClaim::Full
                                                      : Impl::LastClaim::Short;
  if (!batch.lines.empty()) {
    batch.batch_id = make_uuid_v4();
    im.insert_claim.bind_static(1, batch.batch_id).bind(2, now + lease.count());
    im.insert_claim.bind_blob(3, flight.ids.data(), flight.ids.size() * sizeof(int64_t));
    if ((rc = im.insert_claim.step_rc()) != SQLITE_DONE) return fail(im.insert_claim, rc);
    im.insert_claim.reset();
  }
  if ((rc = tx.commit()) != SQLITE_OK) return handle_error(rc, "cannot claim a batch");
  if (batch.lines.empty()) return std::optional<ClaimedBatch>{};
  im.in_flight.emplace(batch.batch_id, std::move(flight));
  return std::optional<ClaimedBatch>{std::move(batch)};
}

// Ends a batch this process claimed: its rows are delivered up to the seq that was sent
// (ack, dead letter) or not at all (release), and its lease is dropped. A late ack after
// the lease expired still records what was delivered; another uploader may send the same
// update again, which the collector's highest-seq rule makes harmless.
Status Spool::finish_batch(const std::string& batch_id, bool delivered, const char* what) {
  const auto it = impl_->in_flight.find(batch_id);
  if (it == impl_->in_flight.end())
    return Error{std::string(what) + ": batch " + batch_id + " is not in flight in this process"};
  Impl& im = *impl_;
  const Impl::InFlight& flight = it->second;
  Impl::Transaction tx(im.db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), what);
  if (delivered) {
    if (int rc = im.dequeue_delivered(flight); rc != SQLITE_DONE) return handle_error(rc, what);
    for (std::size_t i = 0; i < flight.ids.size(); ++i)
      if (flight.closed[i]) im.delivered_closed.push_back(flight.ids[i]);
  }
  im.delete_claim.bind_static(1, batch_id);
  if (int rc = im.delete_claim.step_and_reset(); rc != SQLITE_DONE) return handle_error(rc, what);
  // The list is only a hint: a sweep deletes no row that is queued, whatever happened to
  // this transaction, and sweep_delivered() (once the spool is drained) takes them all.
  const std::size_t unswept = im.delivered_closed.size();
  if ((unswept >= kSweepRows && im.last_claim == Impl::LastClaim::Short) || unswept >= kMaxUnswept)
    if (int rc = im.sweep_delivered(); rc != SQLITE_DONE) return handle_error(rc, what);
  if (int rc = tx.commit(); rc != SQLITE_OK) return handle_error(rc, what);
  im.in_flight.erase(it);
  return Status::Ok();
}

Result<std::size_t> Spool::sweep_delivered(std::size_t max_rows) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  // Only after this process delivered closed sessions: the statement scans the table. It
  // also takes those of processes that died before their sweep.
  if (impl_->delivered_closed.empty()) return std::size_t{0};
  Impl::Transaction tx(impl_->db.get());
  if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot sweep delivered sessions");
  Statement& st = impl_->sweep_all_delivered;
  st.bind(1, static_cast<int64_t>(max_rows));
  const int rc = st.step_and_reset();
  if (rc != SQLITE_DONE) return handle_error(rc, "cannot sweep delivered sessions");
  const auto swept = static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
  if (int crc = tx.commit(); crc != SQLITE_OK) return handle_error(crc, "cannot sweep delivered sessions");
  if (swept < max_rows) impl_->delivered_closed.clear();
  return swept;
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

Status Spool::dead_letter(const ClaimedBatch& batch, const std::string& reason, int http_status) {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return s;
  const std::string& batch_id = batch.batch_id;
  if (!impl_->in_flight.contains(batch_id))
    return Error{"cannot dead-letter a batch: batch " + batch_id + " is not in flight in this process"};
  // The batch's own lines: exactly what was sent, not a newer update of the same sessions.
  const std::vector<std::string_view>& lines = batch.lines;
  {
    Impl::Transaction tx(impl_->db.get());
    if (tx.begin_rc() != SQLITE_OK) return handle_error(tx.begin_rc(), "cannot dead-letter a batch");
    Statement ins(impl_->db.get(),
                  "INSERT INTO dead_letters(batch_id, reason, http_status, created_ms, body) VALUES(?1, ?2, ?3, ?4, ?5)");
    const int64_t now = now_ms();
    for (const std::string_view line : lines) {
      ins.bind(1, batch_id).bind(2, reason).bind(3, http_status).bind(4, now).bind(5, line);
      const int rc = ins.step_and_reset();
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
  while ((rc = st.step_rc()) == SQLITE_ROW)
    out.push_back(DeadLetter{st.int64(0), st.text(1), st.text(2),
                             static_cast<int>(st.int64(3)), st.int64(4), st.text(5)});
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
    while (st.step_rc() == SQLITE_ROW) letters.emplace_back(st.int64(0), st.text(1));
  }
  // Pending again, unless the session has a newer update (which will be sent anyway).
  Statement del(impl_->db.get(), "DELETE FROM dead_letters WHERE id = ?1");
  std::size_t requeued = 0;
  const int64_t now = now_ms();
  for (const auto& [id, body] : letters) {
    if (auto r = decode_record(body)) {
      if (int rc = impl_->put(*r, body, writer_id_, now, true); rc != SQLITE_DONE)
        return handle_error(rc, "cannot requeue dead letters");
    }
    // An undecodable letter goes back as it is: the collector will refuse it again.
    del.bind(1, id);
    const int rc = del.step_and_reset();
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
  if (int rc = del.step_rc(); rc != SQLITE_DONE) return handle_error(rc, "cannot purge dead letters");
  return static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
}

Result<std::vector<std::string>> Spool::pending_lines() {
  std::lock_guard lock(mutex_);
  if (Status s = ensure_open(); !s) return Error{s.error()};
  Statement st(impl_->db.get(), "SELECT s.body FROM pending p JOIN sessions s ON s.id = p.id ORDER BY p.id");
  std::vector<std::string> out;
  int rc;
  while ((rc = st.step_rc()) == SQLITE_ROW) out.push_back(st.text(0));
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
    while ((rc = st.step_rc()) == SQLITE_ROW) {
      ProcessIdentity who{static_cast<pid_t>(st.int64(1)), static_cast<uint64_t>(st.int64(2)),
                          st.text(3)};
      if (!who.alive()) dead.push_back(st.int64(0));
    }
    if (rc != SQLITE_DONE) return handle_error(rc, "cannot recover sessions");
  }
  std::vector<SessionRecord> closes;
  for (int64_t writer : dead) {
    Statement st(impl_->db.get(), "SELECT body FROM sessions WHERE writer_id = ?1 AND closed = 0");
    st.bind(1, writer);
    while (st.step_rc() == SQLITE_ROW) {
      auto last = decode_record(st.text(0));
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
  for (const SessionRecord& r : closes)
    if (int rc = impl_->put(r, encode_record(r), writer_id_, now); rc != SQLITE_DONE)
      return handle_error(rc, "cannot recover sessions");
  for (int64_t writer : dead) {
    Statement st(impl_->db.get(), "DELETE FROM writers WHERE id = ?1");
    st.bind(1, writer);
    if (int rc = st.step_rc(); rc != SQLITE_DONE) return handle_error(rc, "cannot recover sessions");
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
               "SELECT (SELECT count(*) FROM pending), "
               "(SELECT coalesce(sum(length(ids)), 0) / 8 FROM claims WHERE lease_until >= ?1), "
               "(SELECT count(*) FROM dead_letters), (SELECT value FROM meta WHERE key = 'dropped_records'), "
               "(SELECT value FROM meta WHERE key = 'dropped_bytes'), "
               "(SELECT min(since) FROM pending), "
               "(SELECT count(*) FROM sessions WHERE closed = 0)");
  st.bind(1, now_ms());
  if (int rc = st.step_rc(); rc != SQLITE_ROW) return handle_error(rc, "cannot read spool stats");
  s.pending = static_cast<uint64_t>(st.int64(0));
  s.claimed = static_cast<uint64_t>(st.int64(1));
  s.dead_letters = static_cast<uint64_t>(st.int64(2));
  s.dropped_records = static_cast<uint64_t>(st.int64(3));
  s.dropped_bytes = static_cast<uint64_t>(st.int64(4));
  if (!st.is_null(5)) s.oldest_pending_ms = st.int64(5);
  s.open_sessions = static_cast<uint64_t>(st.int64(6));
  s.bytes = impl_->used_bytes();
  return s;
}

}  // namespace streamtally
