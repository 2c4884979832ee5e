// ClickHouseStore: open, ingest and stats (reports: clickhouse_reports.cpp, sessions:
// clickhouse_sessions.cpp).
#include "clickhouse_store.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <set>
#include <tuple>

#include "clickhouse_schema.hpp"
#include "session_columns.hpp"

namespace streamtally::collector {
namespace {

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string with_database(std::string sql, const std::string& database) {
  for (std::size_t at = sql.find("{db}"); at != std::string::npos; at = sql.find("{db}", at))
    sql.replace(at, 4, database);
  return sql;
}

Result<int64_t> single_integer(const Result<std::string>& body) {
  if (!body) return Error{body.error()};
  try {
    return std::stoll(*body);
  } catch (const std::exception&) {
    return Error{"clickhouse: expected a number, got \"" + body->substr(0, 100) + "\""};
  }
}

// One row of the updates table: every column (JSONEachRow fills no defaults).
void append_update_row(const IngestRecord& in, std::string& out) {
  const SessionRecord& r = in.record;
  nlohmann::json row = {
      {"server_id", r.server_id},
      {"session_id", r.session_id},
      {"seq", r.seq},
      {"state", to_string(r.state)},
      {"type", to_string(r.type)},
      {"protocol", to_string(r.protocol)},
      {"stream", r.stream},
      {"host", r.host},
      {"client_ip", r.client_ip},
      {"user_agent", r.user_agent},
      {"referer", r.referer},
      {"referer_domain", in.referer_domain},
      {"user_id", r.user_id ? nlohmann::json(*r.user_id) : nlohmann::json(nullptr)},
      {"token", r.token ? nlohmann::json(*r.token) : nlohmann::json(nullptr)},
      {"started_at", r.started_at},
      {"updated_at", r.updated_at},
      {"ended_at", r.ended_at ? nlohmann::json(*r.ended_at) : nlohmann::json(nullptr)},
      {"t", r.ended_at.value_or(r.updated_at)},
      {"bytes_in", static_cast<int64_t>(r.bytes_in)},
      {"bytes_out", static_cast<int64_t>(r.bytes_out)},
      {"end_reason", r.end_reason == EndReason::None ? nlohmann::json(nullptr)
                                                     : nlohmann::json(std::string(to_string(r.end_reason)))},
      {"tags", r.tags.empty() ? std::string() : nlohmann::json(r.tags).dump()},
      {"tag_keys", nlohmann::json::array()},
      {"tag_values", nlohmann::json::array()},
      {"country", in.country},
      {"device_type", in.device_type},
      {"os", in.os},
      {"browser", in.browser},
  };
  for (const auto& [key, value] : r.tags) {
    row["tag_keys"].push_back(key);
    row["tag_values"].push_back(value);
  }
  out += row.dump();
  out += '\n';
}

}  // namespace

ClickHouseStore::ClickHouseStore(const ClickHouseAddress& address) : client_(address) {}

std::string ClickHouseStore::table(const char* name) const { return client_.address().database + "." + name; }

Result<std::unique_ptr<ClickHouseStore>> ClickHouseStore::open(const ClickHouseAddress& address) {
  std::unique_ptr<ClickHouseStore> store(new ClickHouseStore(address));
  for (const char* statement : kClickHouseSchema) {
    auto done = store->client_.query(with_database(statement, address.database));
    if (!done)
      return Error{"store clickhouse://" + address.host + ":" + std::to_string(address.port) + "/" +
                   address.database + ": " + done.error()};
  }
  auto bound = single_integer(store->client_.query("SELECT max(max_session_ms) FROM " + store->table("bounds")));
  if (!bound) return Error{bound.error()};
  store->max_session_ms_ = *bound;
  return store;
}

// Group commit: the first batch to arrive leads and writes every batch that queued
// meanwhile with it (ClickHouse wants few large INSERTs: each one writes a part).
Result<IngestOutcome> ClickHouseStore::ingest(IngestBatch batch) {
  return group_commit_.submit(batch, [this](std::span<IngestBatch* const> group) {
    auto written = write_group(group);
    std::vector<Result<IngestOutcome>> outcomes;
    for (std::size_t i = 0; i < group.size(); ++i)
      outcomes.push_back(written ? Result<IngestOutcome>((*written)[i]) : Result<IngestOutcome>(Error{written.error()}));
    return outcomes;
  });
}

Result<std::vector<IngestOutcome>> ClickHouseStore::write_group(std::span<IngestBatch* const> group) {
  std::vector<IngestOutcome> outcomes(group.size());
  // Keys seen before, or earlier in this group: replays, nothing stored.
  std::set<std::string> keys_seen;
  {
    std::vector<std::string> keys;
    for (const IngestBatch* batch : group)
      if (!batch->idempotency_key.empty()) keys.push_back(batch->idempotency_key);
    if (!keys.empty()) {
      QueryValues values;
      const std::string listed = values.list(keys);
      auto rows = client_.query("SELECT DISTINCT key FROM " + table("batches") + " WHERE key IN " + listed +
                                    " FORMAT TabSeparated",
                                values);
      if (!rows) return Error{"store: " + rows.error()};
      Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
        if (!row.empty() && row[0]) keys_seen.insert(std::move(*row[0]));
      });
      if (!parsed) return Error{"store: " + parsed.error()};
    }
  }
  std::vector<bool> replayed(group.size());
  for (std::size_t i = 0; i < group.size(); ++i) {
    const std::string& key = group[i]->idempotency_key;
    replayed[i] = !key.empty() && !keys_seen.insert(key).second;
  }

  // Which updates of the group's sessions exist already. started_at leads the primary
  // key; the plain IN on it is what 18.16's index analysis uses (the tuple IN alone read
  // the whole table).
  using UpdateKey = std::tuple<std::string, std::string, int64_t>;  // server_id, session_id, seq
  std::set<UpdateKey> present;
  {
    QueryValues values;
    ExternalTable& sessions = values.table("started_at Int64, server_id String, session_id String");
    ExternalTable& starts = values.table("started_at Int64");
    std::set<std::tuple<int64_t, std::string, std::string>> listed;
    std::set<int64_t> started;
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (replayed[i]) continue;
      for (const IngestRecord& in : group[i]->records) {
        const SessionRecord& r = in.record;
        if (!listed.emplace(r.started_at, r.server_id, r.session_id).second) continue;
        sessions.tsv += std::to_string(r.started_at) + '\t';
        append_tsv_field(sessions.tsv, r.server_id);
        sessions.tsv += '\t';
        append_tsv_field(sessions.tsv, r.session_id);
        sessions.tsv += '\n';
        if (started.insert(r.started_at).second) starts.tsv += std::to_string(r.started_at) + '\n';
      }
    }
    if (!listed.empty()) {
      auto rows = client_.query("SELECT server_id, session_id, seq FROM " + table("updates") + " WHERE started_at IN " +
                                    starts.name + " AND (started_at, server_id, session_id) IN " + sessions.name +
                                    " FORMAT TabSeparated",
                                values);
      if (!rows) return Error{"store: " + rows.error()};
      Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
        if (row.size() == 3 && row[0] && row[1] && row[2])
          present.emplace(std::move(*row[0]), std::move(*row[1]), std::stoll(*row[2]));
      });
      if (!parsed) return Error{"store: " + parsed.error()};
    }
  }

  // In arrival order: a record stored before, or earlier in the group, is a duplicate.
  std::string inserts, keys;
  int64_t longest = 0;
  for (std::size_t i = 0; i < group.size(); ++i) {
    const IngestBatch& batch = *group[i];
    IngestOutcome& outcome = outcomes[i];
    if (replayed[i]) {
      outcome.replayed = true;
      outcome.duplicates = static_cast<int64_t>(batch.records.size());
      continue;
    }
    for (const IngestRecord& in : batch.records) {
      const SessionRecord& r = in.record;
      if (!present.emplace(r.server_id, r.session_id, r.seq).second) {
        ++outcome.duplicates;
        continue;
      }
      ++outcome.accepted;
      append_update_row(in, inserts);
      longest = std::max(longest, std::max(r.started_at, r.ended_at.value_or(r.updated_at)) - r.started_at);
    }
    if (!batch.idempotency_key.empty())
      keys += nlohmann::json{{"key", batch.idempotency_key}, {"at", now_seconds()}}.dump() + "\n";
  }
  // The bound first: a report must never miss a session that is already stored.
  if (longest > max_session_ms_.load()) {
    const std::string row = nlohmann::json{{"max_session_ms", longest}, {"at", now_seconds()}}.dump() + "\n";
    if (Status s = client_.insert("INSERT INTO " + table("bounds") + " FORMAT JSONEachRow", row); !s)
      return Error{"store: " + s.error()};
    max_session_ms_ = longest;
  }
  // One block: all the group's updates or none. Then the keys: a crash between the two
  // makes the retries find every record present (duplicates, nothing counted twice).
  if (!inserts.empty())
    if (Status s = client_.insert("INSERT INTO " + table("updates") + " FORMAT JSONEachRow", inserts); !s)
      return Error{"store: " + s.error()};
  if (!keys.empty())
    if (Status s = client_.insert("INSERT INTO " + table("batches") + " FORMAT JSONEachRow", keys); !s)
      return Error{"store: " + s.error()};
  return outcomes;
}

Result<StoreStats> ClickHouseStore::stats() {
  StoreStats stats;
  auto sessions = single_integer(client_.query("SELECT uniqExact(server_id, session_id) FROM " + table("updates")));
  if (!sessions) return Error{sessions.error()};
  stats.sessions = *sessions;
  QueryValues values;
  const std::string database = values.value(client_.address().database);
  auto bytes = single_integer(client_.query(
      "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = " + database, values));
  if (!bytes) return Error{bytes.error()};
  stats.size_bytes = *bytes;
  return stats;
}

}  // namespace streamtally::collector
