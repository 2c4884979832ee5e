// SQL the ClickHouse store's queries share: the latest record of each session, and
// dimensions and filters on it. Values travel as external tables (QueryValues).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clickhouse_client.hpp"
#include "report_model.hpp"

namespace streamtally::collector {

// A table of the latest record (highest seq) of every session with a row that
// started in [started_from, started_to]: server_id, session_id, started_at, last_t
// (ended_at or updated_at), end_t (max of the two), the wanted columns of the updates
// table under their names (seq, state, type, ..., tags, tag_keys, country, ...; only
// those, as argMax over wide rows is what such a query costs), and with_chain `chain`:
// the distinct (seq, t, bytes_in, bytes_out) of the session sorted by seq.
// started_from is lowered by the longest session seen (the bounds table), so every
// session still open at started_from is in. A session's started_at is the same in all
// its updates (the edge fixes it when the session opens), so selecting rows by it
// keeps chains whole.
std::string latest_sessions_sql(const std::string& database, int64_t started_from, int64_t started_to,
                                const std::vector<std::string>& wanted, bool with_chain);
// Every column of the updates table, for latest_sessions_sql.
std::vector<std::string> all_latest_columns();
// The columns a dimension's expression reads.
std::vector<std::string> columns_of_dimension(std::string_view dimension);

// The expression of a validated dimension on that table.
std::string dimension_sql(std::string_view dimension, QueryValues& values);

// " AND (expr IN _pN) ..." for every where clause.
std::string where_sql(const std::vector<WhereClause>& where, QueryValues& values);

// floor(a / b) for b > 0 (intDiv truncates toward zero).
std::string floor_div_sql(const std::string& a, const std::string& b);

}  // namespace streamtally::collector
