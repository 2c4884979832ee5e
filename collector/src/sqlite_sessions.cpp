// /v1/sessions and CSV export on SQLite: Retroview's Sessions tabs (all, by stream,
// by server, by user, unique per day). Group rows sum whole sessions that were open
// at some instant of [from, to].
#include <algorithm>

#include "sql_builder.hpp"
#include "sqlite_store.hpp"

namespace streamtally::collector {
namespace {

enum class Kind { Integer, NullableInteger, Text, NullableText, Seconds, TagsJson };

struct Column {
  const char* name;
  const char* sql;
  Kind kind;
};

constexpr const char* kViewtimeMs = "(s.end_t - s.started_at)";

const std::vector<Column>& columns_of(SessionGroup group) {
  static const std::vector<Column> all{
      {"server_id", "s.server_id", Kind::Text},       {"host", "s.host", Kind::Text},
      {"session_id", "s.session_id", Kind::Text},     {"seq", "s.seq", Kind::Integer},
      {"state", "s.state", Kind::Text},               {"type", "s.type", Kind::Text},
      {"protocol", "s.protocol", Kind::Text},         {"stream", "s.stream", Kind::Text},
      {"client_ip", "s.client_ip", Kind::Text},       {"user_agent", "s.user_agent", Kind::Text},
      {"referer", "s.referer", Kind::Text},           {"user_id", "s.user_id", Kind::NullableText},
      {"token", "s.token", Kind::NullableText},       {"started_at", "s.started_at", Kind::Integer},
      {"updated_at", "s.updated_at", Kind::Integer},  {"ended_at", "s.ended_at", Kind::NullableInteger},
      {"bytes_in", "s.bytes_in", Kind::Integer},      {"bytes_out", "s.bytes_out", Kind::Integer},
      {"end_reason", "s.end_reason", Kind::NullableText}, {"tags", "s.tags", Kind::TagsJson},
      {"country", "s.country", Kind::Text},           {"device_type", "s.device_type", Kind::Text},
      {"os", "s.os", Kind::Text},                     {"browser", "s.browser", Kind::Text},
      {"referer_domain", "s.referer_domain", Kind::Text}, {"viewtime", kViewtimeMs, Kind::Seconds},
  };
  static const std::vector<Column> by_stream{
      {"stream", "s.stream", Kind::Text},
      {"sessions", "count(*)", Kind::Integer},
      {"views", "sum(s.type = 'play')", Kind::Integer},
      {"bytes_out", "sum(s.bytes_out)", Kind::Integer},
      {"bytes_in", "sum(s.bytes_in)", Kind::Integer},
      {"viewtime", "sum(s.end_t - s.started_at)", Kind::Seconds},
  };
  static const std::vector<Column> by_server{
      {"server_id", "s.server_id", Kind::Text},
      {"host", "max(s.host)", Kind::Text},
      {"sessions", "count(*)", Kind::Integer},
      {"views", "sum(s.type = 'play')", Kind::Integer},
      {"bytes_out", "sum(s.bytes_out)", Kind::Integer},
      {"bytes_in", "sum(s.bytes_in)", Kind::Integer},
      {"viewtime", "sum(s.end_t - s.started_at)", Kind::Seconds},
  };
  // SQLite takes bare columns from the row that holds max()/min(): the user's
  // latest session, the unique group's first one.
  static const std::vector<Column> by_user{
      {"user_id", "s.user_id", Kind::Text},
      {"last_started_at", "max(s.started_at)", Kind::Integer},
      {"sessions", "count(*)", Kind::Integer},
      {"views", "sum(s.type = 'play')", Kind::Integer},
      {"bytes_out", "sum(s.bytes_out)", Kind::Integer},
      {"viewtime", "sum(s.end_t - s.started_at)", Kind::Seconds},
      {"country", "s.country", Kind::Text},
      {"client_ip", "s.client_ip", Kind::Text},
      {"user_agent", "s.user_agent", Kind::Text},
      {"referer", "s.referer", Kind::Text},
  };
  static const std::vector<Column> unique{
      {"day", "(s.started_at / 86400000) * 86400000", Kind::Integer},
      {"started_at", "min(s.started_at)", Kind::Integer},
      {"stream", "s.stream", Kind::Text},
      {"protocol", "s.protocol", Kind::Text},
      {"client_ip", "s.client_ip", Kind::Text},
      {"user_id", "s.user_id", Kind::NullableText},
      {"referer", "s.referer", Kind::Text},
      {"user_agent", "s.user_agent", Kind::Text},
      {"country", "s.country", Kind::Text},
      {"sessions", "count(*)", Kind::Integer},
      {"bytes_out", "sum(s.bytes_out)", Kind::Integer},
      {"viewtime", "sum(s.end_t - s.started_at)", Kind::Seconds},
  };
  switch (group) {
    case SessionGroup::Stream: return by_stream;
    case SessionGroup::Server: return by_server;
    case SessionGroup::User: return by_user;
    case SessionGroup::Unique: return unique;
    case SessionGroup::All: break;
  }
  return all;
}

const char* group_by(SessionGroup group) {
  switch (group) {
    case SessionGroup::Stream: return " GROUP BY s.stream";
    case SessionGroup::Server: return " GROUP BY s.server_id";
    case SessionGroup::User: return " GROUP BY s.user_id";
    case SessionGroup::Unique:
      return " GROUP BY 1, s.stream, s.protocol, s.client_ip, s.user_id, s.referer, s.user_agent";
    case SessionGroup::All: break;
  }
  return "";
}

// Deterministic order for paging: the requested column, then the group's key.
const char* tie_breaker(SessionGroup group) {
  switch (group) {
    case SessionGroup::Stream: return "s.stream";
    case SessionGroup::Server: return "s.server_id";
    case SessionGroup::User: return "s.user_id";
    case SessionGroup::Unique: return "1, s.stream, s.protocol, s.client_ip, s.user_id, s.referer, s.user_agent";
    case SessionGroup::All: break;
  }
  return "s.server_id, s.session_id";  // not s.id: insertion order differs between stores
}

std::string filter_sql(const SessionsQuery& q, int64_t max_session_ms, SqlBuilder& sql) {
  const SessionFilter& f = q.filter;
  std::string w = " WHERE s.started_at >= " + sql.param(f.from - max_session_ms) + " AND s.started_at <= " +
                  sql.param(f.to) + " AND s.end_t >= " + sql.param(f.from);
  auto any_of = [&](const char* column, const std::vector<std::string>& values) {
    if (values.empty()) return;
    w += std::string(" AND ") + column + " IN (";
    for (std::size_t i = 0; i < values.size(); ++i) w += (i ? ", " : "") + sql.param(values[i]);
    w += ")";
  };
  any_of("s.stream", f.streams);
  any_of("s.server_id", f.servers);
  any_of("s.protocol", f.protocols);
  if (f.user_id) w += " AND s.user_id = " + sql.param(*f.user_id);
  if (f.ip) w += " AND s.client_ip = " + sql.param(*f.ip);
  if (f.user_agent_contains) w += " AND instr(s.user_agent, " + sql.param(*f.user_agent_contains) + ") > 0";
  if (f.type) w += " AND s.type = " + sql.param(*f.type);
  if (f.min_duration_ms) w += std::string(" AND ") + kViewtimeMs + " >= " + sql.param(*f.min_duration_ms);
  if (f.max_duration_ms) w += std::string(" AND ") + kViewtimeMs + " <= " + sql.param(*f.max_duration_ms);
  if (q.group == SessionGroup::User) w += " AND s.user_id IS NOT NULL";
  return w;
}

}  // namespace

std::vector<std::string> SqliteStore::session_columns(SessionGroup group) const {
  std::vector<std::string> names;
  for (const Column& c : columns_of(group)) names.emplace_back(c.name);
  return names;
}

Result<SessionsPage> SqliteStore::sessions(const SessionsQuery& q) {
  if (Status s = apply_before_read(); !s) return Error{s.error()};
  const auto& columns = columns_of(q.group);
  auto order = std::find_if(columns.begin(), columns.end(),
                            [&](const Column& c) { return c.name == q.order_column; });
  if (order == columns.end() || order->kind == Kind::TagsJson)
    return Error{"order: cannot order by \"" + q.order_column + "\""};
  const auto order_index = order - columns.begin();

  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  SessionsPage page;

  SqlBuilder count_sql;
  const std::string from_where = " FROM sessions AS s" + filter_sql(q, max_session_ms_, count_sql);
  Statement count(lease.get(), "SELECT count(*) FROM (SELECT 1" + from_where + group_by(q.group) + ")");
  if (!count.ok()) return Error{count.error()};
  count_sql.bind_all(count);
  if (count.step()) page.total = count.int64(0);
  if (count.failed()) return Error{count.error()};

  SqlBuilder sql;
  std::string text = "SELECT ";
  for (std::size_t i = 0; i < columns.size(); ++i) text += (i ? ", " : "") + std::string(columns[i].sql);
  text += " FROM sessions AS s" + filter_sql(q, max_session_ms_, sql) + group_by(q.group);
  text += " ORDER BY " + std::to_string(order_index + 1) + (q.descending ? " DESC, " : ", ") + tie_breaker(q.group);
  text += " LIMIT " + sql.param(q.limit) + " OFFSET " + sql.param(q.offset);
  Statement rows(lease.get(), text);
  if (!rows.ok()) return Error{rows.error()};
  sql.bind_all(rows);
  while (rows.step()) {
    nlohmann::json row = nlohmann::json::object();
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const int col = static_cast<int>(i);
      const Column& c = columns[i];
      switch (c.kind) {
        case Kind::Integer: row[c.name] = rows.int64(col); break;
        case Kind::NullableInteger:
          row[c.name] = rows.is_null(col) ? nlohmann::json(nullptr) : nlohmann::json(rows.int64(col));
          break;
        case Kind::Text: row[c.name] = rows.text(col); break;
        case Kind::NullableText:
          row[c.name] = rows.is_null(col) ? nlohmann::json(nullptr) : nlohmann::json(rows.text(col));
          break;
        case Kind::Seconds: row[c.name] = static_cast<double>(rows.int64(col)) / 1000.0; break;
        case Kind::TagsJson:
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
