#include "session_columns.hpp"

#include <algorithm>

namespace streamtally::collector {

const std::vector<SessionColumn>& session_columns_of(SessionGroup group) {
  using K = ColumnKind;
  static const std::vector<SessionColumn> all{
      {"server_id", K::Text, "s.server_id", "server_id"},
      {"host", K::Text, "s.host", "host"},
      {"session_id", K::Text, "s.session_id", "session_id"},
      {"seq", K::Integer, "s.seq", "seq"},
      {"state", K::Text, "s.state", "state"},
      {"type", K::Text, "s.type", "type"},
      {"protocol", K::Text, "s.protocol", "protocol"},
      {"stream", K::Text, "s.stream", "stream"},
      {"client_ip", K::Text, "s.client_ip", "client_ip"},
      {"user_agent", K::Text, "s.user_agent", "user_agent"},
      {"referer", K::Text, "s.referer", "referer"},
      {"user_id", K::NullableText, "s.user_id", "user_id"},
      {"token", K::NullableText, "s.token", "token"},
      {"started_at", K::Integer, "s.started_at", "started_at"},
      {"updated_at", K::Integer, "s.updated_at", "updated_at"},
      {"ended_at", K::NullableInteger, "s.ended_at", "ended_at"},
      {"bytes_in", K::Integer, "s.bytes_in", "bytes_in"},
      {"bytes_out", K::Integer, "s.bytes_out", "bytes_out"},
      {"end_reason", K::NullableText, "s.end_reason", "end_reason"},
      {"tags", K::TagsJson, "s.tags", "tags"},
      {"country", K::Text, "s.country", "country"},
      {"device_type", K::Text, "s.device_type", "device_type"},
      {"os", K::Text, "s.os", "os"},
      {"browser", K::Text, "s.browser", "browser"},
      {"referer_domain", K::Text, "s.referer_domain", "referer_domain"},
      {"viewtime", K::Seconds, "(s.end_t - s.started_at)", "(end_t - started_at)"},
  };
  static const std::vector<SessionColumn> by_stream{
      {"stream", K::Text, "s.stream", "stream"},
      {"sessions", K::Integer, "count(*)", "toInt64(count())"},
      {"views", K::Integer, "sum(s.type = 'play')", "toInt64(countIf(type = 'play'))"},
      {"bytes_out", K::Integer, "sum(s.bytes_out)", "sum(bytes_out)"},
      {"bytes_in", K::Integer, "sum(s.bytes_in)", "sum(bytes_in)"},
      {"viewtime", K::Seconds, "sum(s.end_t - s.started_at)", "sum(end_t - started_at)"},
  };
  static const std::vector<SessionColumn> by_server{
      {"server_id", K::Text, "s.server_id", "server_id"},
      {"host", K::Text, "max(s.host)", "max(host)"},
      {"sessions", K::Integer, "count(*)", "toInt64(count())"},
      {"views", K::Integer, "sum(s.type = 'play')", "toInt64(countIf(type = 'play'))"},
      {"bytes_out", K::Integer, "sum(s.bytes_out)", "sum(bytes_out)"},
      {"bytes_in", K::Integer, "sum(s.bytes_in)", "sum(bytes_in)"},
      {"viewtime", K::Seconds, "sum(s.end_t - s.started_at)", "sum(end_t - started_at)"},
  };
  // SQLite takes bare columns from the row that holds max()/min(); ClickHouse says
  // the same with argMax/argMin.
  static const std::vector<SessionColumn> by_user{
      {"user_id", K::Text, "s.user_id", "assumeNotNull(user_id)"},
      {"last_started_at", K::Integer, "max(s.started_at)", "max(started_at)"},
      {"sessions", K::Integer, "count(*)", "toInt64(count())"},
      {"views", K::Integer, "sum(s.type = 'play')", "toInt64(countIf(type = 'play'))"},
      {"bytes_out", K::Integer, "sum(s.bytes_out)", "sum(bytes_out)"},
      {"viewtime", K::Seconds, "sum(s.end_t - s.started_at)", "sum(end_t - started_at)"},
      {"country", K::Text, "s.country", "argMax(country, started_at)"},
      {"client_ip", K::Text, "s.client_ip", "argMax(client_ip, started_at)"},
      {"user_agent", K::Text, "s.user_agent", "argMax(user_agent, started_at)"},
      {"referer", K::Text, "s.referer", "argMax(referer, started_at)"},
  };
  static const std::vector<SessionColumn> unique{
      {"day", K::Integer, "(s.started_at / 86400000) * 86400000", "intDiv(started_at, 86400000) * 86400000"},
      {"started_at", K::Integer, "min(s.started_at)", "min(started_at)"},
      {"stream", K::Text, "s.stream", "stream"},
      {"protocol", K::Text, "s.protocol", "protocol"},
      {"client_ip", K::Text, "s.client_ip", "client_ip"},
      {"user_id", K::NullableText, "s.user_id", "user_id"},
      {"referer", K::Text, "s.referer", "referer"},
      {"user_agent", K::Text, "s.user_agent", "user_agent"},
      {"country", K::Text, "s.country", "argMin(country, started_at)"},
      {"sessions", K::Integer, "count(*)", "toInt64(count())"},
      {"bytes_out", K::Integer, "sum(s.bytes_out)", "sum(bytes_out)"},
      {"viewtime", K::Seconds, "sum(s.end_t - s.started_at)", "sum(end_t - started_at)"},
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

GroupKeys session_group_keys(SessionGroup group) {
  switch (group) {
    case SessionGroup::Stream: return {"s.stream", "stream"};
    case SessionGroup::Server: return {"s.server_id", "server_id"};
    case SessionGroup::User: return {"s.user_id", "user_id"};
    case SessionGroup::Unique:
      return {"1, s.stream, s.protocol, s.client_ip, s.user_id, s.referer, s.user_agent",
              "c0, stream, protocol, client_ip, user_id, referer, user_agent"};
    case SessionGroup::All: break;
  }
  return {"", ""};
}

GroupKeys session_tie_breaker(SessionGroup group) {
  if (group == SessionGroup::All) return {"s.server_id, s.session_id", "server_id, session_id"};
  // SQLite sorts NULL first; ClickHouse last unless told.
  if (group == SessionGroup::Unique)
    return {session_group_keys(group).sqlite,
            "c0, stream, protocol, client_ip, user_id NULLS FIRST, referer, user_agent"};
  return session_group_keys(group);
}

Result<std::size_t> session_order_column(SessionGroup group, const std::string& name) {
  const auto& columns = session_columns_of(group);
  auto order = std::find_if(columns.begin(), columns.end(), [&](const SessionColumn& c) { return c.name == name; });
  if (order == columns.end() || order->kind == ColumnKind::TagsJson)
    return Error{"order: cannot order by \"" + name + "\""};
  return static_cast<std::size_t>(order - columns.begin());
}

std::string session_filter_sql(const SessionsQuery& q, const FilterDialect& d) {
  const SessionFilter& f = q.filter;
  const std::string p = d.column_prefix;
  const std::string viewtime_ms = "(" + p + "end_t - " + p + "started_at)";
  std::string w = " WHERE " + p + "end_t >= " + d.integer(f.from) + " AND " + p + "started_at <= " + d.integer(f.to);
  auto any_of = [&](const char* column, const std::vector<std::string>& list) {
    if (!list.empty()) w += " AND " + p + column + " IN " + d.list(list);
  };
  any_of("stream", f.streams);
  any_of("server_id", f.servers);
  any_of("protocol", f.protocols);
  if (f.user_id) w += " AND " + p + "user_id = " + d.text(*f.user_id);
  if (f.ip) w += " AND " + p + "client_ip = " + d.text(*f.ip);
  if (f.user_agent_contains)
    w += std::string(" AND ") + d.contains + "(" + p + "user_agent, " + d.text(*f.user_agent_contains) + ") > 0";
  if (f.type) w += " AND " + p + "type = " + d.text(*f.type);
  if (f.min_duration_ms) w += " AND " + viewtime_ms + " >= " + d.integer(*f.min_duration_ms);
  if (f.max_duration_ms) w += " AND " + viewtime_ms + " <= " + d.integer(*f.max_duration_ms);
  if (q.group == SessionGroup::User) w += " AND " + p + "user_id IS NOT NULL";
  return w;
}

}  // namespace streamtally::collector
