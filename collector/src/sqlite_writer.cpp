#include "sqlite_writer.hpp"

#include <vector>

#include "update_chain.hpp"

namespace streamtally::collector {

void append_dims_key_part(std::string& key, std::string_view value) {
  key += std::to_string(value.size());
  key.push_back(':');
  key.append(value);
}

Status SqliteWriter::prepare() {
  sqlite3* d = db.get();
  find_session = Statement(d,
                           "SELECT id, seq, started_at, last_t, type, dims_a, dims_b, bytes_in, bytes_out, state "
                           "FROM sessions WHERE server_id = ?1 AND session_id = ?2");
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
  read_chain = Statement(d, kReadChainSql);
  set_meta = Statement(d, "UPDATE meta SET value = ?2 WHERE key = ?1");
  keep_damaged = Statement(d, "INSERT OR REPLACE INTO inbox_damaged VALUES (?1, ?2, ?3, ?4)");
  std::vector<Statement*> all{&find_session, &insert_session, &update_session, &update_session_fast,
                              &insert_update, &read_chain,     &set_meta,       &keep_damaged};
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const RollupFamily& family = kRollupFamilies[f];
    std::string columns, params;
    for (std::size_t i = 0; i < family.dimensions.size(); ++i) {
      columns += std::string(i ? ", " : "") + family.dimensions[i];
      params += (i ? ", ?" : "?") + std::to_string(i + 1);
    }
    insert_dims[f] = Statement(d, std::string("INSERT INTO ") + family.dims_table + " (" + columns + ") VALUES (" +
                                      params + ")");
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
    if (!existing.ok()) return Error{existing.error()};
    while (existing.step()) {
      std::string key;
      for (int col = 1; col <= static_cast<int>(family.dimensions.size()); ++col)
        append_dims_key_part(key, existing.text(col));
      dims_ids[f].emplace(std::move(key), existing.int64(0));
    }
    if (existing.failed()) return Error{existing.error()};
  }
  for (Statement* s : all)
    if (!s->ok()) return Error{s->error()};
  // Sessions are never deleted, so max + 1 is never an id that was used.
  Statement max_id(d, "SELECT coalesce(max(id), 0) FROM sessions");
  if (max_id.step()) next_session_id = max_id.int64(0) + 1;
  if (max_id.failed()) return Error{max_id.error()};
  return Status::Ok();
}

void SqliteWriter::reset_all() {
  for (Statement* s : {&find_session, &insert_session, &update_session, &update_session_fast, &insert_update,
                       &read_chain, &set_meta, &keep_damaged})
    s->reset();
  for (auto& s : insert_dims) s.reset();
  for (auto& levels : upsert_rollup)
    for (auto& s : levels) s.reset();
}

}  // namespace streamtally::collector
