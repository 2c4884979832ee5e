// /v1/sessions and CSV export on ClickHouse: the columns of session_columns.hpp over
// the latest record of every session open at some instant of [from, to], in the
// SQLite store's order (NULL first ascending, last descending; same tie-breakers).
#include "clickhouse_sql.hpp"
#include "clickhouse_store.hpp"
#include "session_columns.hpp"

namespace streamtally::collector {
namespace {

// Bounds and durations are integers from the query parser: written as numbers. Text goes
// as external data tables.
std::string filter_sql(const SessionsQuery& q, QueryValues& values) {
  return session_filter_sql(
      q, {"", "position", [&](const std::string& v) { return values.value(v); },
          [](int64_t v) { return std::to_string(v); },
          [&](const std::vector<std::string>& list) { return values.list(list); }});
}

// One TabSeparated cell as the API renders it.
nlohmann::json cell(ColumnKind kind, std::optional<std::string>& text) {
  if (!text) return kind == ColumnKind::TagsJson ? nlohmann::json::object() : nlohmann::json(nullptr);
  switch (kind) {
    case ColumnKind::Integer:
    case ColumnKind::NullableInteger: return std::stoll(*text);
    case ColumnKind::Text:
    case ColumnKind::NullableText: return std::move(*text);
    case ColumnKind::Seconds: return static_cast<double>(std::stoll(*text)) / 1000.0;
    case ColumnKind::TagsJson:
      return text->empty() ? nlohmann::json::object() : nlohmann::json::parse(*text, nullptr, false);
  }
  return nullptr;
}

}  // namespace

Result<SessionsPage> ClickHouseStore::sessions(const SessionsQuery& q) {
  const auto& columns = session_columns_of(q.group);
  const auto order_index = session_order_column(q.group, q.order_column);
  if (!order_index) return Error{order_index.error()};

  const GroupKeys keys = session_group_keys(q.group);
  const std::string group_by = *keys.clickhouse ? std::string(" GROUP BY ") + keys.clickhouse : std::string();
  std::string select;
  for (std::size_t i = 0; i < columns.size(); ++i)
    select += (i ? ", " : "") + std::string(columns[i].clickhouse) + " AS c" + std::to_string(i);
  const std::string latest =
      latest_sessions_sql(client_.address().database, q.filter.from, q.filter.to, all_latest_columns(), false);

  SessionsPage page;
  {
    QueryValues values;
    // The day key of the unique group is a column alias: select it for the count too.
    auto total = client_.query("SELECT count() FROM (SELECT " + select + " FROM (" + latest + ")" +
                                   filter_sql(q, values) + group_by + ") FORMAT TabSeparated",
                               values);
    if (!total) return Error{total.error()};
    page.total = std::stoll(*total);
  }

  QueryValues values;
  const ColumnKind order_kind = columns[*order_index].kind;
  const bool nullable = order_kind == ColumnKind::NullableText || order_kind == ColumnKind::NullableInteger;
  std::string sql = "SELECT " + select + " FROM (" + latest + ")" + filter_sql(q, values) + group_by +
                    " ORDER BY c" + std::to_string(*order_index) + (q.descending ? " DESC" : "") +
                    (nullable ? (q.descending ? " NULLS LAST" : " NULLS FIRST") : "") + ", " +
                    session_tie_breaker(q.group).clickhouse + " LIMIT " + std::to_string(q.offset) + ", " +
                    std::to_string(q.limit) + " FORMAT TabSeparated";
  auto rows = client_.query(sql, values);
  if (!rows) return Error{rows.error()};
  Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
    if (row.size() != columns.size()) return;
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t i = 0; i < columns.size(); ++i) out[columns[i].name] = cell(columns[i].kind, row[i]);
    page.rows.push_back(std::move(out));
  });
  if (!parsed) return Error{parsed.error()};
  return page;
}

}  // namespace streamtally::collector
