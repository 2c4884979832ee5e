// The columns of /v1/sessions and CSV export for each group (Retroview's Sessions
// tabs), with the expression each store computes them with. One table for both
// stores, so the API's shape cannot drift between them.
//
// SQLite reads the sessions table (AS s). ClickHouse reads the latest record of each
// session (clickhouse_sql.hpp), whose columns have the same names. Group rows sum
// whole sessions; the user group's bare columns come from the user's latest session,
// the unique group's country from the group's first session.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "report_model.hpp"
#include "streamtally/result.hpp"

namespace streamtally::collector {

enum class ColumnKind { Integer, NullableInteger, Text, NullableText, Seconds, TagsJson };

struct SessionColumn {
  const char* name;
  ColumnKind kind;
  const char* sqlite;
  const char* clickhouse;
};

const std::vector<SessionColumn>& session_columns_of(SessionGroup group);

// The index in session_columns_of(group) of the column a page is ordered by; an error
// naming the parameter when that column does not exist or cannot order (tags).
Result<std::size_t> session_order_column(SessionGroup group, const std::string& name);

// The group's GROUP BY keys after "GROUP BY " ("" for All), in each dialect. The
// unique group's first key is the day (the first column).
struct GroupKeys {
  const char* sqlite;
  const char* clickhouse;
};
GroupKeys session_group_keys(SessionGroup group);

// What orders equal rows, so pages are stable (never the insertion order, which
// differs between stores).
GroupKeys session_tie_breaker(SessionGroup group);

// What differs between the stores in the sessions filter: how columns are named, how
// values are bound (never written into the SQL) and the substring function.
struct FilterDialect {
  const char* column_prefix;  // "s." or ""
  const char* contains;       // f(haystack, needle) > 0 when needle is in haystack
  std::function<std::string(const std::string&)> text;
  std::function<std::string(int64_t)> integer;
  std::function<std::string(const std::vector<std::string>&)> list;  // the right side of IN
};

// The conditions of /v1/sessions' filter, " WHERE …": sessions open at some instant of
// [from, to] (inclusive) that match every filter given.
std::string session_filter_sql(const SessionsQuery& q, const FilterDialect& d);

}  // namespace streamtally::collector
