// The collector's report vocabulary: metrics, dimensions, filters and the result
// shapes a Store returns. Parsing from query strings lives in query_params.*,
// rendering to JSON in report_api.cpp; the Store only sees these validated values.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamtally::collector {

enum class Metric { Sessions, Views, UniqueViewers, Viewtime, BytesOut, BytesIn, Ccu, MaxCcu };

std::string_view metric_name(Metric);
std::optional<Metric> parse_metric(std::string_view);
inline constexpr std::string_view kMetricNames =
    "sessions, views, unique_viewers, viewtime, bytes_out, bytes_in, ccu, max_ccu";

// Dimensions are names from SPEC: stream, server, host, type, protocol, country,
// device_type, os, browser, user_id, referer_domain, tag.<key>.
bool is_dimension(std::string_view);
inline constexpr std::string_view kDimensionNames =
    "stream, server, host, type, protocol, country, device_type, os, browser, user_id, referer_domain, tag.<key>";

struct WhereClause {
  std::string dimension;
  std::vector<std::string> values;  // OR
};

// A report over [from, to): both minute-aligned (the API widens a request to the
// whole minutes it touches — reports have minute resolution).
struct ReportQuery {
  std::vector<std::string> dimensions;
  std::vector<Metric> metrics;
  std::vector<WhereClause> where;  // AND
  int64_t from = 0;
  int64_t to = 0;
  int64_t bucket_ms = 0;  // timeseries only: a multiple of one minute

  // True when any of these metrics is asked for.
  bool wants(std::initializer_list<Metric> any) const;
};

// Metric values are integers: viewtime in milliseconds (rendered as seconds).
struct GroupTotals {
  std::vector<std::string> key;   // one value per dimension
  std::vector<int64_t> values;    // one per metric
};
struct GroupSeries {
  std::vector<std::string> key;
  std::vector<std::vector<int64_t>> values;  // [metric][bucket]
};
struct Timeseries {
  int64_t first_bucket = 0;
  int64_t bucket_ms = 0;
  int64_t bucket_count = 0;
  std::vector<GroupSeries> groups;
};

enum class SessionGroup { All, Stream, Server, User, Unique };

struct SessionFilter {
  std::vector<std::string> streams, servers, protocols;
  std::optional<std::string> user_id, ip, user_agent_contains, type;
  std::optional<int64_t> min_duration_ms, max_duration_ms;
  int64_t from = 0;  // sessions open at some instant of [from, to] (ms, inclusive)
  int64_t to = 0;
};

struct SessionsQuery {
  SessionGroup group = SessionGroup::All;
  SessionFilter filter;
  std::string order_column;  // validated against the group's columns
  bool descending = false;
  int64_t limit = 100;
  int64_t offset = 0;
};

}  // namespace streamtally::collector
