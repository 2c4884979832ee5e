#include "sqlite_writer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "streamtally/clock.hpp"
#include "update_chain.hpp"

namespace streamtally::collector {
namespace {

// The nullable columns end_reason and tags: NULL when the record has none. Text is bound
// without a copy: the records outlive the statement's step.
void bind_end_reason(Statement& s, int i, const SessionRecord& r) {
  if (r.end_reason == EndReason::None)
    s.bind_null(i);
  else
    s.bind_static(i, to_string(r.end_reason));
}
void bind_tags(Statement& s, int i, const SessionRecord& r) {
  if (r.tags.empty())
    s.bind_null(i);
  else
    s.bind(i, nlohmann::json(r.tags).dump());
}

// Binds the 29 session columns of a record (the order of kColumns below).
void bind_session(Statement& s, const IngestRecord& in, const FamilyIds& ids) {
  const SessionRecord& r = in.record;
  const int64_t last_t = point_time(r);
  s.bind_static(1, r.server_id).bind_static(2, r.session_id).bind(3, r.seq).bind_static(4, to_string(r.state));
  s.bind_static(5, to_string(r.type)).bind_static(6, to_string(r.protocol)).bind_static(7, r.stream);
  s.bind_static(8, r.host).bind_static(9, r.client_ip).bind_static(10, r.user_agent).bind_static(11, r.referer);
  s.bind_static(12, in.referer_domain).bind_static(13, r.user_id).bind_static(14, r.token).bind(15, r.started_at);
  s.bind(16, r.updated_at).bind(17, r.ended_at).bind(18, last_t).bind(19, std::max(r.started_at, last_t));
  s.bind(20, static_cast<int64_t>(r.bytes_in)).bind(21, static_cast<int64_t>(r.bytes_out));
  bind_end_reason(s, 22, r), bind_tags(s, 23, r);
  s.bind_static(24, in.country).bind_static(25, in.device_type).bind_static(26, in.os).bind_static(27, in.browser);
  s.bind(28, ids[0]).bind(29, ids[1]);
}

// Binds update_session_fast: the columns the next update of a session may change.
void bind_session_fast(Statement& u, const IngestRecord& in, int64_t id) {
  const SessionRecord& r = in.record;
  const int64_t t = point_time(r);
  u.bind(1, r.seq).bind_static(2, to_string(r.state)).bind_static(3, r.client_ip).bind_static(4, r.user_agent);
  u.bind_static(5, r.referer).bind_static(6, in.referer_domain).bind_static(7, r.user_id).bind_static(8, r.token);
  u.bind(9, r.updated_at).bind(10, r.ended_at).bind(11, t).bind(12, std::max(r.started_at, t));
  u.bind(13, static_cast<int64_t>(r.bytes_in)).bind(14, static_cast<int64_t>(r.bytes_out));
  bind_end_reason(u, 15, r), bind_tags(u, 16, r);
  u.bind(17, id);
}

}  // namespace

Status SqliteWriter::prepare() {
  sqlite3* d = db.get();
  static constexpr const char* kColumns =
      "server_id, session_id, seq, state, type, protocol, stream, host, client_ip, user_agent, referer, "
      "referer_domain, user_id, token, started_at, updated_at, ended_at, last_t, end_t, bytes_in, bytes_out, "
      "end_reason, tags, country, device_type, os, browser, dims_a, dims_b";
  static constexpr const char* kValues =
      "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)";
  // The id as ?30, as in update_session: both are bound by the same code.
  std::string values_and_id = kValues;
  values_and_id.insert(values_and_id.size() - 1, ",?30");  // before the closing parenthesis
  insert_session = Statement(d, std::string("INSERT INTO sessions (") + kColumns + ", id) VALUES " + values_and_id);
  update_session = Statement(d, std::string("UPDATE sessions SET (") + kColumns + ") = " + kValues + " WHERE id = ?30");
  // The next update of an unchanged session: started_at, type and the dimensions stay.
  update_session_fast = Statement(
      d, "UPDATE sessions SET seq = ?1, state = ?2, client_ip = ?3, user_agent = ?4, referer = ?5, "
         "referer_domain = ?6, user_id = ?7, token = ?8, updated_at = ?9, ended_at = ?10, last_t = ?11, "
         "end_t = ?12, bytes_in = ?13, bytes_out = ?14, end_reason = ?15, tags = ?16 WHERE id = ?17");
  insert_update = Statement(d, kInsertChainRowSql);
  set_meta = Statement(d, "UPDATE meta SET value = ?2 WHERE key = ?1");
  keep_damaged = Statement(d, "INSERT OR REPLACE INTO inbox_damaged VALUES (?1, ?2, ?3, ?4)");
  std::vector<Statement*> all{&insert_session, &update_session, &update_session_fast,
                              &insert_update,  &set_meta,       &keep_damaged};
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const RollupFamily& family = kRollupFamilies[f];
    std::string columns, params;
    for (std::size_t i = 0; i < family.dimensions.size(); ++i) {
      columns += std::string(", ") + family.dimensions[i];
      params += ", ?" + std::to_string(i + 2);
    }
    // With the id the applier gave it (apply_state.hpp).
    insert_dims[f] =
        Statement(d, std::string("INSERT INTO ") + family.dims_table + " (id" + columns + ") VALUES (?1" + params + ")");
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
  }
  for (Statement* s : all)
    if (!s->ok()) return Error{s->error()};
  return Status::Ok();
}

Status SqliteWriter::write(const ApplyPlan& plan) {
  for (const ApplyPlan::NewDims& d : plan.new_dims) {
    Statement& s = insert_dims[d.family];
    s.bind(1, d.id);
    for (std::size_t i = 0; i < kRollupFamilies[d.family].dimensions.size(); ++i)
      s.bind_static(static_cast<int>(i + 2), d.values[i]);
    if (Status st = s.run_and_reset(); !st) return st;
  }
  // Each touched session once, in id order: its new chain points as one row (keyed by
  // the lowest, which the chain does not hold), and its row.
  for (const ApplyPlan::SessionWrite& w : plan.sessions) {
    const PendingRow& p = w.row;
    if (!p.points.empty())
      if (Status st = write_chain_row(insert_update, w.id, p.points, chain_row); !st) return st;
    if (p.record) {
      Statement& u = p.insert ? insert_session : p.full ? update_session : update_session_fast;
      if (p.insert || p.full)
        bind_session(u, *p.record, w.dims), u.bind(30, w.id);
      else
        bind_session_fast(u, *p.record, w.id);
      if (Status st = u.run_and_reset(); !st) return st;
    }
  }

  const auto levels = plan.deltas.levels();
  for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
    for (const auto& [cell, c] : levels[level]) {
      if (c.zero()) continue;
      Statement& s = upsert_rollup[cell.family][level];
      s.bind(1, cell.bucket).bind(2, cell.dims).bind(3, c.starts).bind(4, c.views).bind(5, c.ends).bind(6, c.bytes_in);
      s.bind(7, c.bytes_out).bind(8, c.viewtime_ms);
      if (Status st = s.run_and_reset(); !st) return st;
    }
  }

  for (const ApplyPlan::DamagedRow& row : plan.damaged) {
    // Kept aside with the reason: never applied, never lost, never blocking the rest.
    std::fprintf(stderr, "streamtally-collector: inbox row %lld moved to inbox_damaged: %s\n",
                 static_cast<long long>(row.id), row.damage.c_str());
    keep_damaged.bind(1, row.id).bind_blob(2, row.body.data(), row.body.size());
    keep_damaged.bind(3, row.damage).bind(4, now_ms());
    if (Status st = keep_damaged.run_and_reset(); !st) return st;
  }
  return Status::Ok();
}

void SqliteWriter::reset_all() {
  for (Statement* s : {&insert_session, &update_session, &update_session_fast, &insert_update, &set_meta, &keep_damaged})
    s->reset();
  for (auto& s : insert_dims) s.reset();
  for (auto& levels : upsert_rollup)
    for (auto& s : levels) s.reset();
}

}  // namespace streamtally::collector
