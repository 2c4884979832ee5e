#include "apply_state.hpp"

#include "update_chain.hpp"

namespace streamtally::collector {

void append_dims_key_part(std::string& key, std::string_view value) {
  key += std::to_string(value.size());
  key.push_back(':');
  key.append(value);
}

Result<std::unique_ptr<ApplyState>> ApplyState::open(const std::string& path) {
  auto db = open_database(path, true);
  if (!db) return Error{db.error()};
  auto state = std::make_unique<ApplyState>();
  state->db = std::move(*db);
  sqlite3* d = state->db.get();
  state->find_session = Statement(d,
                                  "SELECT id, seq, started_at, last_t, type, dims_a, dims_b, bytes_in, bytes_out, state "
                                  "FROM sessions WHERE server_id = ?1 AND session_id = ?2");
  state->read_chain = Statement(d, kReadChainSql);
  for (Statement* s : {&state->find_session, &state->read_chain})
    if (!s->ok()) return Error{path + ": " + s->error()};
  if (Status s = state->reload(); !s) return Error{path + ": " + s.error()};
  return state;
}

Status ApplyState::reload() {
  sessions.clear();
  sqlite3* d = db.get();
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const RollupFamily& family = kRollupFamilies[f];
    std::string columns;
    for (std::size_t i = 0; i < family.dimensions.size(); ++i) columns += std::string(", ") + family.dimensions[i];
    dims_ids[f].clear();
    next_dims_id[f] = 1;
    Statement existing(d, std::string("SELECT id") + columns + " FROM " + family.dims_table);
    Status st = existing.each_row([&](const Statement& q) {
      std::string key;
      for (int col = 1; col <= static_cast<int>(family.dimensions.size()); ++col) append_dims_key_part(key, q.text(col));
      dims_ids[f].emplace(std::move(key), q.int64(0));
      next_dims_id[f] = std::max(next_dims_id[f], q.int64(0) + 1);
    });
    if (!st) return st;
  }
  // Sessions are never deleted, so max + 1 is never an id that was used.
  Statement max_id(d, "SELECT coalesce(max(id), 0) FROM sessions");
  return max_id.each_row([&](const Statement& q) { next_session_id = q.int64(0) + 1; });
}

void ApplyState::forget_closed(const ApplyPlan& plan) {
  for (SessionCache::value_type* e : plan.closed)
    if (e->second.last_plan <= plan.number) sessions.erase(sessions.find(e->first));
}

}  // namespace streamtally::collector
