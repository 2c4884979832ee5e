// /v1/sessions and CSV export on SQLite: Retroview's Sessions tabs (all, by stream,
// by server, by user, unique per day). Group rows sum whole sessions that were open
// at some instant of [from, to].
#include "session_columns.hpp"
#include "sql_builder.hpp"
#include "sqlite_store.hpp"

namespace streamtally::collector {
namespace {

// The session filter, after a lower bound on started_at that lets the index range stop
// where no session can still be open at `from`.
std::string filter_sql(const SessionsQuery& q, int64_t max_session_ms, SqlBuilder& sql) {
  const std::string index_bound = " AND s.started_at >= " + sql.param(q.filter.from - max_session_ms);
  const FilterDialect sqlite{"s.", "instr", [&](const std::string& v) { return sql.param(v); },
                             [&](int64_t v) { return sql.param(v); },
                             [&](const std::vector<std::string>& list) { return sql.list(list); }};
  return session_filter_sql(q, sqlite) + index_bound;
}

}  // namespace

Result<SessionsPage> SqliteStore::sessions(const SessionsQuery& q) {
  if (Status s = apply_before_read(); !s) return Error{s.error()};
  const auto& columns = session_columns_of(q.group);
  const auto order_index = session_order_column(q.group, q.order_column);
  if (!order_index) return Error{order_index.error()};

  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  SessionsPage page;

  SqlBuilder count_sql;
  const std::string group_by = *session_group_keys(q.group).sqlite
                                   ? std::string(" GROUP BY ") + session_group_keys(q.group).sqlite
                                   : std::string();
  const std::string from_where = " FROM sessions AS s" + filter_sql(q, max_session_ms_, count_sql);
  Statement count(lease.get(), "SELECT count(*) FROM (SELECT 1" + from_where + group_by + ")");
  if (!count.ok()) return Error{count.error()};
  count_sql.bind_all(count);
  if (count.step()) page.total = count.int64(0);
  if (count.failed()) return Error{count.error()};

  SqlBuilder sql;
  std::string text = "SELECT ";
  for (std::size_t i = 0; i < columns.size(); ++i) text += (i ? ", " : "") + std::string(columns[i].sqlite);
  text += " FROM sessions AS s" + filter_sql(q, max_session_ms_, sql) + group_by;
  text += " ORDER BY " + std::to_string(*order_index + 1) + (q.descending ? " DESC, " : ", ") +
          session_tie_breaker(q.group).sqlite;
  text += " LIMIT " + sql.param(q.limit) + " OFFSET " + sql.param(q.offset);
  Statement rows(lease.get(), text);
  if (!rows.ok()) return Error{rows.error()};
  sql.bind_all(rows);
  while (rows.step()) {
    nlohmann::json row = nlohmann::json::object();
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const int col = static_cast<int>(i);
      const SessionColumn& c = columns[i];
      switch (c.kind) {
        case ColumnKind::Integer: row[c.name] = rows.int64(col); break;
        case ColumnKind::NullableInteger:
          row[c.name] = rows.is_null(col) ? nlohmann::json(nullptr) : nlohmann::json(rows.int64(col));
          break;
        case ColumnKind::Text: row[c.name] = rows.text(col); break;
        case ColumnKind::NullableText:
          row[c.name] = rows.is_null(col) ? nlohmann::json(nullptr) : nlohmann::json(rows.text(col));
          break;
        case ColumnKind::Seconds: row[c.name] = static_cast<double>(rows.int64(col)) / 1000.0; break;
        case ColumnKind::TagsJson:
          row[c.name] = rows.is_null(col) ? nlohmann::json::object()
                                          : nlohmann::json::parse(rows.text(col), nullptr, false);
          break;
      }
    }
    page.rows.push_back(std::move(row));
  }
  if (rows.failed()) return Error{rows.error()};
  return page;
}

}  // namespace streamtally::collector
