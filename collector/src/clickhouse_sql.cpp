#include "clickhouse_sql.hpp"

#include <algorithm>
#include <iterator>

namespace streamtally::collector {
namespace {

// The columns of the latest record, in the order of the argMax tuple.
constexpr const char* kLatestColumns[] = {
    "seq",        "state",      "type",       "protocol",   "stream",     "host",        "client_ip",
    "user_agent", "referer",    "referer_domain", "user_id", "token",     "started_at",  "updated_at",
    "ended_at",   "t",          "bytes_in",   "bytes_out",  "end_reason", "tags",        "tag_keys",
    "tag_values", "country",    "device_type", "os",        "browser",
};

}  // namespace

std::vector<std::string> all_latest_columns() {
  return {std::begin(kLatestColumns), std::end(kLatestColumns)};
}

std::string latest_sessions_sql(const std::string& database, int64_t started_from, int64_t started_to,
                                const std::vector<std::string>& wanted, bool with_chain) {
  // started_at and t always (end_t), then the wanted ones in the table's order.
  std::vector<std::string> names{"started_at", "t"};
  for (const char* name : kLatestColumns)
    if (std::find(wanted.begin(), wanted.end(), name) != wanted.end() && std::find(names.begin(), names.end(), name) == names.end())
      names.emplace_back(name);
  std::string tuple, columns;
  for (std::size_t i = 0; i < names.size(); ++i) {
    tuple += (i ? ", " : "") + names[i];
    // t of the latest record is the SQLite store's last_t.
    columns += ", l." + std::to_string(i + 1) + " AS " + (names[i] == "t" ? "last_t" : names[i]);
  }
  std::string sql = "SELECT server_id, session_id" + columns + ", greatest(started_at, last_t) AS end_t";
  if (with_chain) sql += ", arraySort(x -> x.1, c) AS chain";
  sql += " FROM (SELECT server_id, session_id, argMax((" + tuple + "), seq) AS l";
  if (with_chain) sql += ", groupUniqArray((seq, t, bytes_in, bytes_out)) AS c";
  sql += " FROM " + database + ".updates WHERE started_at >= " + std::to_string(started_from) +
         " - (SELECT max(max_session_ms) FROM " + database + ".bounds) AND started_at <= " +
         std::to_string(started_to) + " GROUP BY server_id, session_id)";
  return sql;
}

std::vector<std::string> columns_of_dimension(std::string_view d) {
  if (d == "server") return {};  // server_id: the group key
  if (d.starts_with("tag.")) return {"tag_keys", "tag_values"};
  return {std::string(d)};
}

std::string dimension_sql(std::string_view d, QueryValues& values) {
  if (d == "server") return "server_id";
  if (d == "user_id") return "ifNull(user_id, '')";
  // Index 0 (no such tag) reads the default: "".
  if (d.starts_with("tag.")) return "tag_values[indexOf(tag_keys, " + values.value(d.substr(4)) + ")]";
  return std::string(d);  // validated by is_dimension(): a fixed name
}

std::string where_sql(const std::vector<WhereClause>& where, QueryValues& values) {
  std::string out;
  for (const WhereClause& clause : where)
    out += " AND (" + dimension_sql(clause.dimension, values) + " IN " + values.list(clause.values) + ")";
  return out;
}

std::string floor_div_sql(const std::string& a, const std::string& b) {
  // Not via modulo(): on 18.16, modulo(Int64, constant) is wrong (119999 % 60000 = -5537).
  const std::string q = "intDiv(" + a + ", " + b + ")";
  return "(" + q + " - (" + q + " * " + b + " > " + a + "))";
}

}  // namespace streamtally::collector
