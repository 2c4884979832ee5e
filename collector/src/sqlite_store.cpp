#include "sqlite_store.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>

#include "attribution.hpp"
#include "sqlite_schema.hpp"
#include "streamtally/clock.hpp"

namespace streamtally::collector {
namespace {

// The dimension ids of a session in every rollup family.
using FamilyIds = std::array<int64_t, kFamilyCount>;

// Rollup deltas of one batch, summed in memory so a batch writes each touched
// (family, level, bucket, dims) cell once. Minutes are summed first (hash map, the
// hot path); hours and days are derived from them when the batch is written.
class RollupDeltas {
 public:
  struct Cell {
    std::size_t family;
    int64_t bucket, dims;
    bool operator==(const Cell&) const = default;
  };
  struct CellHash {
    std::size_t operator()(const Cell& c) const {
      return std::hash<int64_t>()(c.bucket * 1'000'003 + c.dims * 31 + static_cast<int64_t>(c.family));
    }
  };
  using Cells = std::unordered_map<Cell, Counters, CellHash>;

  void add(const FamilyIds& ids, int64_t minute, const Counters& c) {
    for (std::size_t f = 0; f < kFamilyCount; ++f) minutes_[{f, minute, ids[f]}] += c;
  }
  MinuteSink sink_for(const FamilyIds& ids) {
    return [this, ids](int64_t minute, const Counters& c) { add(ids, minute, c); };
  }
  // The cells of every level, [level] -> cells in key order (B-tree friendly writes).
  std::array<std::vector<std::pair<Cell, Counters>>, kRollupLevelCount> levels() const {
    std::array<Cells, kRollupLevelCount> sums;
    sums[0] = minutes_;
    for (const auto& [cell, c] : minutes_)
      for (std::size_t level = 1; level < kRollupLevelCount; ++level)
        sums[level][{cell.family, floor_to(cell.bucket, kRollupLevelMs[level]), cell.dims}] += c;
    std::array<std::vector<std::pair<Cell, Counters>>, kRollupLevelCount> out;
    for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
      out[level].assign(sums[level].begin(), sums[level].end());
      std::sort(out[level].begin(), out[level].end(), [](const auto& a, const auto& b) {
        return std::tie(a.first.family, a.first.bucket, a.first.dims) <
               std::tie(b.first.family, b.first.bucket, b.first.dims);
      });
    }
    return out;
  }

 private:
  Cells minutes_;
};

int64_t point_time(const SessionRecord& r) { return r.ended_at ? *r.ended_at : r.updated_at; }

// A rollup dimension's value for a record.
std::string_view dimension_value(const IngestRecord& r, std::string_view dimension) {
  if (dimension == "stream") return r.record.stream;
  if (dimension == "server") return r.record.server_id;
  if (dimension == "host") return r.record.host;
  if (dimension == "type") return to_string(r.record.type);
  if (dimension == "protocol") return to_string(r.record.protocol);
  if (dimension == "country") return r.country;
  if (dimension == "device_type") return r.device_type;
  if (dimension == "os") return r.os;
  return r.browser;
}

// The cache key of a record's combination in a family: length-prefixed values, so
// no value can run into the next.
std::string family_key(const IngestRecord& r, const RollupFamily& family) {
  std::string key;
  for (const char* d : family.dimensions) {
    const std::string_view v = dimension_value(r, d);
    key += std::to_string(v.size());
    key.push_back(':');
    key.append(v);
  }
  return key;
}

std::string tags_json(const SessionRecord& r) {
  if (r.tags.empty()) return {};
  return nlohmann::json(r.tags).dump();
}

}  // namespace

// The writer connection, its prepared statements and the dims id caches.
struct SqliteStore::Writer {
  DbHandle db;
  Statement find_batch, insert_batch, find_session, insert_session, update_session, update_session_fast,
      insert_update, read_chain, set_meta;
  std::array<Statement, kFamilyCount> insert_dims;
  std::array<std::array<Statement, kRollupLevelCount>, kFamilyCount> upsert_rollup;
  std::array<std::unordered_map<std::string, int64_t>, kFamilyCount> dims_ids;

  Status prepare() {
    sqlite3* d = db.get();
    find_batch = Statement(d, "SELECT accepted, duplicates FROM batches WHERE idempotency_key = ?1");
    insert_batch = Statement(d, "INSERT INTO batches VALUES (?1, ?2, ?3, ?4)");
    find_session = Statement(d,
                             "SELECT id, seq, started_at, last_t, type, dims_a, dims_b, bytes_in, bytes_out "
                             "FROM sessions WHERE server_id = ?1 AND session_id = ?2");
    static constexpr const char* kColumns =
        "server_id, session_id, seq, state, type, protocol, stream, host, client_ip, user_agent, referer, "
        "referer_domain, user_id, token, started_at, updated_at, ended_at, last_t, end_t, bytes_in, bytes_out, "
        "end_reason, tags, country, device_type, os, browser, dims_a, dims_b";
    insert_session = Statement(d, std::string("INSERT INTO sessions (") + kColumns +
                                      ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,"
                                      "?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)");
    update_session = Statement(d, std::string("UPDATE sessions SET (") + kColumns +
                                      ") = (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,"
                                      "?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29) WHERE id = ?30");
    // The next update of an unchanged session: no indexed column is in the SET list,
    // so SQLite leaves both indexes alone.
    update_session_fast = Statement(
        d, "UPDATE sessions SET seq = ?1, state = ?2, client_ip = ?3, user_agent = ?4, referer = ?5, "
           "referer_domain = ?6, user_id = ?7, token = ?8, updated_at = ?9, ended_at = ?10, last_t = ?11, "
           "end_t = ?12, bytes_in = ?13, bytes_out = ?14, end_reason = ?15, tags = ?16 WHERE id = ?17");
    insert_update = Statement(d, "INSERT OR IGNORE INTO updates VALUES (?1, ?2, ?3, ?4, ?5)");
    read_chain = Statement(d, "SELECT seq, t, bytes_in, bytes_out FROM updates WHERE session = ?1 ORDER BY seq");
    set_meta = Statement(d, "UPDATE meta SET value = ?2 WHERE key = ?1");
    std::vector<Statement*> all{&find_batch,     &insert_batch,        &find_session,
                                &insert_session, &update_session,      &update_session_fast,
                                &insert_update,  &read_chain,          &set_meta};
    for (std::size_t f = 0; f < kFamilyCount; ++f) {
      const RollupFamily& family = kRollupFamilies[f];
      std::string columns, params;
      for (std::size_t i = 0; i < family.dimensions.size(); ++i) {
        columns += std::string(i ? ", " : "") + family.dimensions[i];
        params += (i ? ", ?" : "?") + std::to_string(i + 1);
      }
      insert_dims[f] = Statement(d, std::string("INSERT INTO ") + family.dims_table + " (" + columns +
                                        ") VALUES (" + params + ")");
      all.push_back(&insert_dims[f]);
      for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
        upsert_rollup[f][level] = Statement(
            d, std::string("INSERT INTO ") + family.tables[level] +
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(bucket, dims) DO UPDATE SET "
                   "starts = starts + excluded.starts, views = views + excluded.views, ends = ends + excluded.ends, "
                   "bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out, "
                   "viewtime_ms = viewtime_ms + excluded.viewtime_ms");
        all.push_back(&upsert_rollup[f][level]);
      }
      // Load the id cache of this family.
      Statement existing(d, std::string("SELECT id, ") + columns + " FROM " + family.dims_table);
      if (!existing.valid()) return Error{existing.error()};
      while (existing.step()) {
        std::string key;
        for (int col = 1; col <= static_cast<int>(family.dimensions.size()); ++col) {
          const std::string v = existing.text(col);
          key += std::to_string(v.size());
          key.push_back(':');
          key += v;
        }
        dims_ids[f].emplace(std::move(key), existing.int64(0));
      }
      if (existing.failed()) return Error{existing.error()};
    }
    for (Statement* s : all)
      if (!s->valid()) return Error{s->error()};
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

// Binds the 29 session columns of a record (the order of kColumns above).
void bind_session(Statement& s, const IngestRecord& in, const FamilyIds& ids) {
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
  s.bind(24, in.country).bind(25, in.device_type).bind(26, in.os).bind(27, in.browser).bind(28, ids[0]).bind(29, ids[1]);
}

}  // namespace

// Group commit: a batch that arrives while another transaction commits waits; the
// next leader takes every waiting batch into one transaction (one fsync), each in
// its own SAVEPOINT so a failing batch is rolled back alone.
Result<IngestOutcome> SqliteStore::ingest(const IngestBatch& batch) {
  auto ticket = std::make_shared<PendingBatch>();
  ticket->batch = &batch;
  std::unique_lock lock(queue_mutex_);
  queue_.push_back(ticket);
  while (!ticket->done) {
    if (leader_active_) {
      queue_done_.wait(lock);
      continue;
    }
    leader_active_ = true;
    std::vector<std::shared_ptr<PendingBatch>> group;
    group.swap(queue_);
    lock.unlock();
    commit_group(group);
    lock.lock();
    leader_active_ = false;
    queue_done_.notify_all();
  }
  return std::move(ticket->result);
}

void SqliteStore::commit_group(std::vector<std::shared_ptr<PendingBatch>>& group) {
  std::lock_guard lock(writer_mutex_);
  Writer& w = *writer_;
  sqlite3* db = w.db.get();
  auto finish_all = [&](const std::string& error) {
    for (auto& p : group) {
      if (!error.empty()) p->result = Error{error};
      p->done = true;
    }
  };
  if (Status s = exec_sql(db, "BEGIN IMMEDIATE"); !s) return finish_all("store busy: " + s.error());
  std::vector<std::pair<std::size_t, std::string>> group_dims_keys;
  int64_t max_session_ms = max_session_ms_;
  for (auto& p : group) p->result = ingest_in_transaction(*p->batch, group_dims_keys, max_session_ms);
  // Raised before the commit is visible: readers bound their range scans with it,
  // and a bound that is briefly too large is harmless, one too small is not.
  if (max_session_ms > max_session_ms_) {
    max_session_ms_ = max_session_ms;
    w.set_meta.bind(1, std::string_view("max_session_ms")).bind(2, max_session_ms);
    Status st = w.set_meta.run();
    w.set_meta.reset();
    if (!st) {
      (void)exec_sql(db, "ROLLBACK");
      for (const auto& [family, key] : group_dims_keys) w.dims_ids[family].erase(key);
      return finish_all("store: " + st.error());
    }
  }
  if (Status s = exec_sql(db, "COMMIT"); !s) {
    (void)exec_sql(db, "ROLLBACK");
    for (const auto& [family, key] : group_dims_keys) w.dims_ids[family].erase(key);
    return finish_all("store: commit failed: " + s.error());
  }
  finish_all("");
}

Result<IngestOutcome> SqliteStore::ingest_in_transaction(const IngestBatch& batch,
                                                         std::vector<std::pair<std::size_t, std::string>>& group_dims_keys,
                                                         int64_t& max_session_ms) {
  Writer& w = *writer_;
  sqlite3* db = w.db.get();
  if (Status s = exec_sql(db, "SAVEPOINT batch"); !s) return Error{"store: " + s.error()};
  std::vector<std::pair<std::size_t, std::string>> new_dims_keys;
  const int64_t max_session_ms_before = max_session_ms;

  auto fail = [&](const std::string& message) -> Result<IngestOutcome> {
    (void)exec_sql(db, "ROLLBACK TO batch; RELEASE batch");
    max_session_ms = max_session_ms_before;
    for (const auto& [family, key] : new_dims_keys) w.dims_ids[family].erase(key);
    for (Statement* s : {&w.find_batch, &w.insert_batch, &w.find_session, &w.insert_session, &w.update_session,
                         &w.update_session_fast, &w.insert_update, &w.read_chain, &w.set_meta})
      s->reset();
    for (auto& s : w.insert_dims) s.reset();
    for (auto& levels : w.upsert_rollup)
      for (auto& s : levels) s.reset();
    return Error{"store: " + message};
  };

  IngestOutcome outcome;
  if (!batch.idempotency_key.empty()) {
    w.find_batch.bind(1, batch.idempotency_key);
    if (w.find_batch.step()) {
      w.find_batch.reset();
      (void)exec_sql(db, "RELEASE batch");
      outcome.replayed = true;
      outcome.duplicates = static_cast<int64_t>(batch.records.size());
      return outcome;
    }
    if (w.find_batch.failed()) return fail(w.find_batch.error());
    w.find_batch.reset();
  }

  auto ids_of = [&](const IngestRecord& r) -> Result<FamilyIds> {
    FamilyIds ids{};
    for (std::size_t f = 0; f < kFamilyCount; ++f) {
      const RollupFamily& family = kRollupFamilies[f];
      std::string key = family_key(r, family);
      if (auto it = w.dims_ids[f].find(key); it != w.dims_ids[f].end()) {
        ids[f] = it->second;
        continue;
      }
      Statement& s = w.insert_dims[f];
      for (std::size_t i = 0; i < family.dimensions.size(); ++i)
        s.bind(static_cast<int>(i + 1), dimension_value(r, family.dimensions[i]));
      Status st = s.run();
      s.reset();
      if (!st) return Error{st.error()};
      ids[f] = sqlite3_last_insert_rowid(db);
      w.dims_ids[f].emplace(key, ids[f]);
      new_dims_keys.emplace_back(f, std::move(key));
    }
    return ids;
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
    auto ids = ids_of(in);
    if (!ids) return fail(ids.error());
    max_session_ms = std::max(max_session_ms, std::max(r.started_at, point.t) - r.started_at);

    w.find_session.bind(1, r.server_id).bind(2, r.session_id);
    const bool exists = w.find_session.step();
    if (w.find_session.failed()) return fail(w.find_session.error());
    if (!exists) {
      w.find_session.reset();
      bind_session(w.insert_session, in, *ids);
      Status st = w.insert_session.run();
      w.insert_session.reset();
      if (!st) return fail(st.error());
      const int64_t id = sqlite3_last_insert_rowid(db);
      w.insert_update.bind(1, id).bind(2, point.seq).bind(3, point.t).bind(4, point.bytes_in).bind(5, point.bytes_out);
      st = w.insert_update.run();
      w.insert_update.reset();
      if (!st) return fail(st.error());
      attribute_session({r.started_at, r.type == SessionType::Play, {point}}, +1, deltas.sink_for(*ids));
      ++outcome.accepted;
      continue;
    }
    const int64_t id = w.find_session.int64(0), stored_seq = w.find_session.int64(1);
    const int64_t stored_started = w.find_session.int64(2), stored_last_t = w.find_session.int64(3);
    const bool stored_play = w.find_session.text(4) == "play";
    const FamilyIds stored_ids{w.find_session.int64(5), w.find_session.int64(6)};
    const int64_t stored_in = w.find_session.int64(7), stored_out = w.find_session.int64(8);
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
    if (newest && *ids == stored_ids && r.started_at == stored_started && play == stored_play) {
      // The common case: the next update of a session. Attribute the new interval
      // and move the session's end; nothing else changes.
      attribute_interval(stored_last_t, point.t, point.bytes_in - stored_in, point.bytes_out - stored_out, +1,
                         deltas.sink_for(*ids));
      Counters end;
      end.ends = -1;
      deltas.add(*ids, floor_to(std::max(stored_started, stored_last_t), kMinuteMs), end);
      end.ends = 1;
      deltas.add(*ids, floor_to(std::max(r.started_at, point.t), kMinuteMs), end);
      Statement& u = w.update_session_fast;
      u.bind(1, r.seq).bind(2, to_string(r.state)).bind(3, r.client_ip).bind(4, r.user_agent).bind(5, r.referer);
      u.bind(6, in.referer_domain).bind(7, r.user_id).bind(8, r.token).bind(9, r.updated_at).bind(10, r.ended_at);
      u.bind(11, point.t).bind(12, std::max(r.started_at, point.t)).bind(13, point.bytes_in);
      u.bind(14, point.bytes_out);
      if (r.end_reason == EndReason::None) u.bind_null(15);
      else u.bind(15, to_string(r.end_reason));
      if (r.tags.empty()) u.bind_null(16);
      else u.bind(16, tags_json(r));
      u.bind(17, id);
      st = u.run();
      u.reset();
      if (!st) return fail(st.error());
      continue;
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
      attribute_session(before, -1, deltas.sink_for(stored_ids));
      attribute_session(after, +1, deltas.sink_for(newest ? *ids : stored_ids));
    }
    if (newest) {
      bind_session(w.update_session, in, *ids);
      w.update_session.bind(30, id);
      st = w.update_session.run();
      w.update_session.reset();
      if (!st) return fail(st.error());
    }
  }

  const auto levels = deltas.levels();
  for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
    for (const auto& [cell, c] : levels[level]) {
      if (c.zero()) continue;
      Statement& s = w.upsert_rollup[cell.family][level];
      s.bind(1, cell.bucket).bind(2, cell.dims).bind(3, c.starts).bind(4, c.views).bind(5, c.ends).bind(6, c.bytes_in);
      s.bind(7, c.bytes_out).bind(8, c.viewtime_ms);
      Status st = s.run();
      s.reset();
      if (!st) return fail(st.error());
    }
  }
  if (!batch.idempotency_key.empty()) {
    w.insert_batch.bind(1, batch.idempotency_key).bind(2, outcome.accepted).bind(3, outcome.duplicates);
    w.insert_batch.bind(4, now_ms());
    Status st = w.insert_batch.run();
    w.insert_batch.reset();
    if (!st) return fail(st.error());
  }
  if (Status s = exec_sql(db, "RELEASE batch"); !s) return fail(s.error());
  group_dims_keys.insert(group_dims_keys.end(), new_dims_keys.begin(), new_dims_keys.end());
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
