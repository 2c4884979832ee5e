#include "sqlite_store.hpp"

#include <filesystem>
#include <map>
#include <tuple>

#include "attribution.hpp"
#include "sqlite_schema.hpp"
#include "streamtally/clock.hpp"

namespace streamtally::collector {
namespace {

// Rollup deltas of one batch, summed in memory so a batch writes each touched
// (level, bucket, dimset) cell once.
class RollupDeltas {
 public:
  void add(int64_t dimset, int64_t minute, const Counters& c) {
    for (std::size_t level = 0; level < std::size(kRollupLevels); ++level)
      cells_[{level, floor_to(minute, kRollupLevels[level].bucket_ms), dimset}] += c;
  }
  MinuteSink sink_for(int64_t dimset) {
    return [this, dimset](int64_t minute, const Counters& c) { add(dimset, minute, c); };
  }
  const std::map<std::tuple<std::size_t, int64_t, int64_t>, Counters>& cells() const { return cells_; }

 private:
  std::map<std::tuple<std::size_t, int64_t, int64_t>, Counters> cells_;
};

int64_t point_time(const SessionRecord& r) { return r.ended_at ? *r.ended_at : r.updated_at; }

std::string dimset_key(const IngestRecord& r) {
  std::string key;
  for (std::string_view part : {std::string_view(r.record.stream), std::string_view(r.record.server_id),
                                std::string_view(r.record.host), to_string(r.record.type),
                                to_string(r.record.protocol), std::string_view(r.country),
                                std::string_view(r.device_type), std::string_view(r.os),
                                std::string_view(r.browser)}) {
    key.append(part);
    key.push_back('\x1f');
  }
  return key;
}

std::string tags_json(const SessionRecord& r) {
  if (r.tags.empty()) return {};
  return nlohmann::json(r.tags).dump();
}

}  // namespace

// The writer connection, its prepared statements and the dimset id cache.
struct SqliteStore::Writer {
  DbHandle db;
  Statement find_batch, insert_batch, find_session, insert_session, update_session, insert_update, read_chain,
      find_dimset, insert_dimset, set_meta;
  Statement upsert_rollup[std::size(kRollupLevels)];
  std::unordered_map<std::string, int64_t> dimsets;

  Status prepare() {
    sqlite3* d = db.get();
    find_batch = Statement(d, "SELECT accepted, duplicates FROM batches WHERE idempotency_key = ?1");
    insert_batch = Statement(d, "INSERT INTO batches VALUES (?1, ?2, ?3, ?4)");
    find_session = Statement(d,
                             "SELECT id, seq, started_at, last_t, type, dimset, bytes_in, bytes_out "
                             "FROM sessions WHERE server_id = ?1 AND session_id = ?2");
    static constexpr const char* kColumns =
        "server_id, session_id, seq, state, type, protocol, stream, host, client_ip, user_agent, referer, "
        "referer_domain, user_id, token, started_at, updated_at, ended_at, last_t, end_t, bytes_in, bytes_out, "
        "end_reason, tags, country, device_type, os, browser, dimset";
    insert_session = Statement(d, std::string("INSERT INTO sessions (") + kColumns +
                                      ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,"
                                      "?19,?20,?21,?22,?23,?24,?25,?26,?27,?28)");
    update_session = Statement(d, std::string("UPDATE sessions SET (") + kColumns +
                                      ") = (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,"
                                      "?19,?20,?21,?22,?23,?24,?25,?26,?27,?28) WHERE id = ?29");
    insert_update = Statement(d, "INSERT OR IGNORE INTO updates VALUES (?1, ?2, ?3, ?4, ?5)");
    read_chain = Statement(d, "SELECT seq, t, bytes_in, bytes_out FROM updates WHERE session = ?1 ORDER BY seq");
    find_dimset = Statement(d,
                            "SELECT id, stream, server, host, type, protocol, country, device_type, os, browser "
                            "FROM dimsets");
    insert_dimset = Statement(d, "INSERT INTO dimsets VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    set_meta = Statement(d, "UPDATE meta SET value = ?2 WHERE key = ?1");
    for (std::size_t i = 0; i < std::size(kRollupLevels); ++i)
      upsert_rollup[i] = Statement(
          d, std::string("INSERT INTO ") + kRollupLevels[i].table +
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(bucket, dimset) DO UPDATE SET "
                 "starts = starts + excluded.starts, views = views + excluded.views, ends = ends + excluded.ends, "
                 "bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out, "
                 "viewtime_ms = viewtime_ms + excluded.viewtime_ms");
    for (Statement* s : {&find_batch, &insert_batch, &find_session, &insert_session, &update_session, &insert_update,
                         &read_chain, &find_dimset, &insert_dimset, &set_meta, &upsert_rollup[0], &upsert_rollup[1],
                         &upsert_rollup[2]})
      if (!s->valid()) return Error{s->error()};
    // Load the dimset cache.
    while (find_dimset.step()) {
      std::string key;
      for (int col = 1; col <= 9; ++col) {
        key += find_dimset.text(col);
        key.push_back('\x1f');
      }
      dimsets.emplace(std::move(key), find_dimset.int64(0));
    }
    if (find_dimset.failed()) return Error{find_dimset.error()};
    find_dimset.reset();
    return Status::Ok();
  }
};

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
  if (Status s = store->init_writer(); !s) return Error{s.error()};
  return store;
}

Status SqliteStore::init_writer() {
  auto db = open_database(path_, false);
  if (!db) return Error{db.error()};
  if (Status s = exec_sql(db->get(), kSqliteSchema); !s) return Error{path_ + ": " + s.error()};
  writer_ = std::make_unique<Writer>();
  writer_->db = std::move(*db);
  if (Status s = writer_->prepare(); !s) return s;
  Statement meta(writer_->db.get(), "SELECT value FROM meta WHERE key = 'max_session_ms'");
  if (meta.step()) max_session_ms_ = meta.int64(0);
  return Status::Ok();
}

Result<DbHandle> SqliteStore::acquire_reader() {
  {
    std::lock_guard lock(readers_mutex_);
    if (!readers_.empty()) {
      DbHandle db = std::move(readers_.back());
      readers_.pop_back();
      return db;
    }
  }
  return open_database(path_, true);
}

void SqliteStore::release_reader(DbHandle db) {
  std::lock_guard lock(readers_mutex_);
  if (readers_.size() < 16) readers_.push_back(std::move(db));
}

namespace {

// Binds the 28 session columns of a record (the order of kColumns above).
void bind_session(Statement& s, const IngestRecord& in, int64_t dimset) {
  const SessionRecord& r = in.record;
  const int64_t last_t = point_time(r);
  s.bind(1, r.server_id).bind(2, r.session_id).bind(3, r.seq).bind(4, to_string(r.state)).bind(5, to_string(r.type));
  s.bind(6, to_string(r.protocol)).bind(7, r.stream).bind(8, r.host).bind(9, r.client_ip).bind(10, r.user_agent);
  s.bind(11, r.referer).bind(12, in.referer_domain).bind(13, r.user_id).bind(14, r.token).bind(15, r.started_at);
  s.bind(16, r.updated_at).bind(17, r.ended_at).bind(18, last_t).bind(19, std::max(r.started_at, last_t));
  s.bind(20, static_cast<int64_t>(r.bytes_in)).bind(21, static_cast<int64_t>(r.bytes_out));
  if (r.end_reason == EndReason::None)
    s.bind_null(22);
  else
    s.bind(22, to_string(r.end_reason));
  if (r.tags.empty())
    s.bind_null(23);
  else
    s.bind(23, tags_json(r));
  s.bind(24, in.country).bind(25, in.device_type).bind(26, in.os).bind(27, in.browser).bind(28, dimset);
}

}  // namespace

Result<IngestOutcome> SqliteStore::ingest(const IngestBatch& batch) {
  std::lock_guard lock(writer_mutex_);
  Writer& w = *writer_;
  sqlite3* db = w.db.get();
  if (Status s = exec_sql(db, "BEGIN IMMEDIATE"); !s) return Error{"store busy: " + s.error()};
  std::vector<std::string> new_dimset_keys;
  int64_t max_session_ms = max_session_ms_;

  auto fail = [&](const std::string& message) -> Result<IngestOutcome> {
    (void)exec_sql(db, "ROLLBACK");
    for (const auto& key : new_dimset_keys) w.dimsets.erase(key);
    for (Statement* s : {&w.find_batch, &w.insert_batch, &w.find_session, &w.insert_session, &w.update_session,
                         &w.insert_update, &w.read_chain, &w.insert_dimset, &w.set_meta})
      s->reset();
    return Error{"store: " + message};
  };

  IngestOutcome outcome;
  if (!batch.idempotency_key.empty()) {
    w.find_batch.bind(1, batch.idempotency_key);
    if (w.find_batch.step()) {
      w.find_batch.reset();
      (void)exec_sql(db, "ROLLBACK");
      outcome.replayed = true;
      outcome.duplicates = static_cast<int64_t>(batch.records.size());
      return outcome;
    }
    if (w.find_batch.failed()) return fail(w.find_batch.error());
    w.find_batch.reset();
  }

  auto dimset_of = [&](const IngestRecord& r) -> Result<int64_t> {
    std::string key = dimset_key(r);
    if (auto it = w.dimsets.find(key); it != w.dimsets.end()) return it->second;
    Statement& s = w.insert_dimset;
    s.bind(1, r.record.stream).bind(2, r.record.server_id).bind(3, r.record.host).bind(4, to_string(r.record.type));
    s.bind(5, to_string(r.record.protocol)).bind(6, r.country).bind(7, r.device_type).bind(8, r.os);
    s.bind(9, r.browser);
    Status st = s.run();
    s.reset();
    if (!st) return Error{st.error()};
    const int64_t id = sqlite3_last_insert_rowid(db);
    w.dimsets.emplace(key, id);
    new_dimset_keys.push_back(std::move(key));
    return id;
  };
  auto read_chain = [&](int64_t session) -> Result<std::vector<UpdatePoint>> {
    std::vector<UpdatePoint> chain;
    w.read_chain.bind(1, session);
    while (w.read_chain.step())
      chain.push_back({w.read_chain.int64(0), w.read_chain.int64(1), w.read_chain.int64(2), w.read_chain.int64(3)});
    const bool failed = w.read_chain.failed();
    std::string error = w.read_chain.error();
    w.read_chain.reset();
    if (failed) return Error{error};
    return chain;
  };

  RollupDeltas deltas;
  for (const IngestRecord& in : batch.records) {
    const SessionRecord& r = in.record;
    const UpdatePoint point{r.seq, point_time(r), static_cast<int64_t>(r.bytes_in), static_cast<int64_t>(r.bytes_out)};
    auto dimset = dimset_of(in);
    if (!dimset) return fail(dimset.error());
    max_session_ms = std::max(max_session_ms, std::max(r.started_at, point.t) - r.started_at);

    w.find_session.bind(1, r.server_id).bind(2, r.session_id);
    const bool exists = w.find_session.step();
    if (w.find_session.failed()) return fail(w.find_session.error());
    if (!exists) {
      w.find_session.reset();
      bind_session(w.insert_session, in, *dimset);
      Status st = w.insert_session.run();
      w.insert_session.reset();
      if (!st) return fail(st.error());
      const int64_t id = sqlite3_last_insert_rowid(db);
      w.insert_update.bind(1, id).bind(2, point.seq).bind(3, point.t).bind(4, point.bytes_in).bind(5, point.bytes_out);
      st = w.insert_update.run();
      w.insert_update.reset();
      if (!st) return fail(st.error());
      attribute_session({r.started_at, r.type == SessionType::Play, {point}}, +1, deltas.sink_for(*dimset));
      ++outcome.accepted;
      continue;
    }
    const int64_t id = w.find_session.int64(0), stored_seq = w.find_session.int64(1);
    const int64_t stored_started = w.find_session.int64(2), stored_last_t = w.find_session.int64(3);
    const bool stored_play = w.find_session.text(4) == "play";
    const int64_t stored_dimset = w.find_session.int64(5);
    const int64_t stored_in = w.find_session.int64(6), stored_out = w.find_session.int64(7);
    w.find_session.reset();

    w.insert_update.bind(1, id).bind(2, point.seq).bind(3, point.t).bind(4, point.bytes_in).bind(5, point.bytes_out);
    Status st = w.insert_update.run();
    w.insert_update.reset();
    if (!st) return fail(st.error());
    if (sqlite3_changes(db) == 0) {  // this seq is already in the chain
      ++outcome.duplicates;
      continue;
    }
    ++outcome.accepted;
    const bool newest = r.seq > stored_seq;
    const bool play = r.type == SessionType::Play;
    if (newest && *dimset == stored_dimset && r.started_at == stored_started && play == stored_play) {
      // The common case: the next update of a session. Attribute the new interval
      // and move the session's end; nothing else changes.
      attribute_interval(stored_last_t, point.t, point.bytes_in - stored_in, point.bytes_out - stored_out, +1,
                         deltas.sink_for(*dimset));
      Counters end;
      end.ends = -1;
      deltas.add(*dimset, floor_to(std::max(stored_started, stored_last_t), kMinuteMs), end);
      end.ends = 1;
      deltas.add(*dimset, floor_to(std::max(r.started_at, point.t), kMinuteMs), end);
    } else {
      // A late (lower seq) update or a changed session: replace the session's whole
      // contribution, computed from the chain before and after.
      auto chain = read_chain(id);
      if (!chain) return fail(chain.error());
      SessionShape after{newest ? r.started_at : stored_started, newest ? play : stored_play, *chain};
      SessionShape before = after;
      before.started_at = stored_started;
      before.play = stored_play;
      std::erase_if(before.chain, [&](const UpdatePoint& p) { return p.seq == point.seq; });
      attribute_session(before, -1, deltas.sink_for(stored_dimset));
      attribute_session(after, +1, deltas.sink_for(newest ? *dimset : stored_dimset));
    }
    if (newest) {
      bind_session(w.update_session, in, *dimset);
      w.update_session.bind(29, id);
      st = w.update_session.run();
      w.update_session.reset();
      if (!st) return fail(st.error());
    }
  }

  for (const auto& [cell, c] : deltas.cells()) {
    if (c.zero()) continue;
    const auto& [level, bucket, dimset] = cell;
    Statement& s = w.upsert_rollup[level];
    s.bind(1, bucket).bind(2, dimset).bind(3, c.starts).bind(4, c.views).bind(5, c.ends).bind(6, c.bytes_in);
    s.bind(7, c.bytes_out).bind(8, c.viewtime_ms);
    Status st = s.run();
    s.reset();
    if (!st) return fail(st.error());
  }
  if (max_session_ms > max_session_ms_) {
    w.set_meta.bind(1, std::string_view("max_session_ms")).bind(2, max_session_ms);
    Status st = w.set_meta.run();
    w.set_meta.reset();
    if (!st) return fail(st.error());
  }
  if (!batch.idempotency_key.empty()) {
    w.insert_batch.bind(1, batch.idempotency_key).bind(2, outcome.accepted).bind(3, outcome.duplicates);
    w.insert_batch.bind(4, now_ms());
    Status st = w.insert_batch.run();
    w.insert_batch.reset();
    if (!st) return fail(st.error());
  }
  // Raised before the commit is visible: readers bound their range scans with it,
  // and a bound that is briefly too large is harmless, one too small is not.
  if (max_session_ms > max_session_ms_) max_session_ms_ = max_session_ms;
  if (Status s = exec_sql(db, "COMMIT"); !s) return fail(s.error());
  return outcome;
}

Result<StoreStats> SqliteStore::stats() {
  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  StoreStats stats;
  // Sessions are never deleted and ids are max+1, so max(id) is the count without a scan.
  Statement count(lease.get(), "SELECT coalesce(max(id), 0) FROM sessions");
  if (count.step()) stats.sessions = count.int64(0);
  if (count.failed()) return Error{count.error()};
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const auto size = std::filesystem::file_size(path_ + suffix, ec);
    if (!ec) stats.size_bytes += static_cast<int64_t>(size);
  }
  return stats;
}

Result<std::unique_ptr<Store>> open_store(const std::string& spec) {
  std::string path = spec;
  if (spec.starts_with("sqlite:")) path = spec.substr(7);
  else if (spec.starts_with("clickhouse://"))
    return Error{"--store clickhouse://... is not implemented in this build; use sqlite:PATH"};
  else if (spec.find("://") != std::string::npos)
    return Error{"--store must be sqlite:PATH or clickhouse://HOST:PORT/DB, got " + spec};
  if (path.empty()) return Error{"--store sqlite: needs a file path"};
  auto store = SqliteStore::open(path);
  if (!store) return Error{store.error()};
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace streamtally::collector
