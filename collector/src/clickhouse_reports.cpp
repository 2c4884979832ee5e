// /v1/events and /v1/timeseries on ClickHouse: the SQLite store's scan engine
// (sqlite_reports.cpp) written as ClickHouse queries over the latest record and the
// update chain of every session open in the range, so both stores give the same
// numbers. Events are a timeseries of one bucket covering the range.
//
// Up to three queries per report, each grouped by the report's dimensions and bucket:
//  - sessions: sessions open in the bucket, play sessions started in it, distinct
//    viewers (client_ip + user_agent). Also decides which groups exist.
//  - chain (viewtime, bytes): every interval (previous point, point] of a chain with
//    its byte deltas, cut at bucket bounds with the integer shares of attribution.hpp:
//    the part of an interval before x is floor(delta * (x - p) / (t - p)), so the
//    shares of adjacent buckets add up to the delta exactly.
//  - intervals (ccu, max_ccu): [started_at, end_t] of every session; the sweep
//    (ccu_sweep.hpp) runs here, as for SQLite.
#include <map>

#include "attribution.hpp"
#include "ccu_sweep.hpp"
#include "clickhouse_sql.hpp"
#include "clickhouse_store.hpp"

namespace streamtally::collector {
namespace {

using GroupKey = std::vector<std::string>;

struct GroupBuckets {
  std::vector<int64_t> sessions, views, viewers, viewtime, bytes_in, bytes_out;
  std::vector<OpenInterval> intervals;
  explicit GroupBuckets(std::size_t count)
      : sessions(count), views(count), viewers(count), viewtime(count), bytes_in(count), bytes_out(count) {}
};

// "lo + i" for every bucket index i in [lo, hi] (none when hi < lo).
std::string bucket_range_sql(const std::string& lo, const std::string& hi) {
  return "arrayJoin(arrayMap(i -> toInt64(i) + " + lo + ", range(toUInt64(greatest(0, " + hi + " - " + lo +
         " + 1)))))";
}

// The part of delta d that attribution puts before x on the interval (p, t] of length
// len > 0: floor(d * (clamp(x) - p) / len), without the 128-bit product: with
// d = q*len + r (0 <= r < len) it is q*u + floor(r*u / len), exact while len*len fits
// 64 bits (intervals under ~35 days); longer ones are computed in floating point.
std::string share_before_sql(const std::string& d, const std::string& x) {
  const std::string len = "greatest(len, 1)";  // both branches of if() run: never divide by 0
  const std::string u = "(least(greatest(" + x + ", p), t) - p)";
  const std::string q = floor_div_sql(d, len);
  const std::string r = "(" + d + " - " + q + " * " + len + ")";
  return "(" + q + " * " + u + " + if(len > 3037000499, toInt64(floor(toFloat64(" + r + ") * " + u + " / " + len +
         ")), intDiv(" + r + " * " + u + ", " + len + ")))";
}

GroupKey read_key(TsvRow& row, std::size_t dims) {
  GroupKey key;
  for (std::size_t i = 0; i < dims; ++i) key.push_back(row[i] ? std::move(*row[i]) : std::string());
  return key;
}

}  // namespace

Result<Timeseries> ClickHouseStore::report(const ReportQuery& q, const Buckets& b, bool events) {
  const std::string& db = client_.address().database;
  const std::size_t dims = q.dimensions.size();
  const auto count = static_cast<std::size_t>(b.count);
  const int64_t range_end = b.first + b.length * b.count;
  const std::string first = std::to_string(b.first), length = std::to_string(b.length),
                    last_index = std::to_string(b.count - 1), end = std::to_string(range_end);
  const bool need_chain = q.wants({Metric::Viewtime, Metric::BytesIn, Metric::BytesOut});
  const bool need_viewers = q.wants({Metric::UniqueViewers});
  const bool need_intervals = q.wants({Metric::MaxCcu}) || (!events && q.wants({Metric::Ccu}));

  // The sessions open in the range with the report's dimensions d0..dn and filters,
  // reading only the columns these need.
  std::vector<std::string> wanted{"type"};
  for (const auto& d : q.dimensions)
    for (auto& c : columns_of_dimension(d)) wanted.push_back(std::move(c));
  for (const auto& w : q.where)
    for (auto& c : columns_of_dimension(w.dimension)) wanted.push_back(std::move(c));
  if (need_viewers) wanted.insert(wanted.end(), {"client_ip", "user_agent"});
  auto sessions_sql = [&](QueryValues& values, bool with_chain) {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < dims; ++i) sql += dimension_sql(q.dimensions[i], values) + " AS d" + std::to_string(i) + ", ";
    sql += std::string("started_at, end_t, type") + (need_viewers ? ", client_ip, user_agent" : "");
    if (with_chain) sql += ", chain";
    sql += " FROM (" + latest_sessions_sql(db, b.first, range_end - 1, wanted, with_chain) + ") WHERE end_t >= " +
           first + " AND started_at < " + end + where_sql(q.where, values);
    return sql;
  };
  std::string key_columns;
  for (std::size_t i = 0; i < dims; ++i) key_columns += "d" + std::to_string(i) + ", ";

  std::map<GroupKey, GroupBuckets> groups;
  {
    QueryValues values;
    const std::string lo = "greatest(0, intDiv(greatest(started_at, " + first + ") - " + first + ", " + length + "))";
    const std::string hi = "least(" + last_index + ", intDiv(least(end_t, " + end + " - 1) - " + first + ", " + length + "))";
    const std::string bucket_start = "(" + first + " + b * " + length + ")";
    const std::string sql =
        "SELECT " + key_columns + "b, count(), countIf(type = 'play' AND started_at >= " + bucket_start +
        " AND started_at < " + bucket_start + " + " + length + "), " +
        (need_viewers ? "uniqExact(client_ip, user_agent)" : "0") + " FROM (SELECT " + key_columns +
        "started_at, type, " + (need_viewers ? "client_ip, user_agent, " : "") + bucket_range_sql(lo, hi) +
        " AS b FROM (" +
        sessions_sql(values, false) + ")) GROUP BY " + key_columns + "b FORMAT TabSeparated";
    auto rows = client_.query(sql, values, kMaxReportPoints);
    if (!rows) {
      if (rows.error().starts_with(ClickHouseClient::kTooManyRows)) return Error{report_too_large_error()};
      return Error{rows.error()};
    }
    Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
      if (row.size() != dims + 4) return;
      auto key = read_key(row, dims);
      const auto bucket = static_cast<std::size_t>(std::stoll(*row[dims]));
      if (bucket >= count) return;
      auto& g = groups.try_emplace(std::move(key), count).first->second;
      g.sessions[bucket] = std::stoll(*row[dims + 1]);
      g.views[bucket] = std::stoll(*row[dims + 2]);
      g.viewers[bucket] = std::stoll(*row[dims + 3]);
    });
    if (!parsed) return Error{parsed.error()};
  }
  if (static_cast<int64_t>(groups.size()) * b.count > kMaxReportPoints) return Error{report_too_large_error()};

  if (need_chain && !groups.empty()) {
    QueryValues values;
    auto points = [](int field) { return "arrayMap(x -> x." + std::to_string(field) + ", chain)"; };
    auto previous = [&](int field, const std::string& before_first) {
      return "arrayPushFront(arrayPopBack(" + points(field) + "), " + before_first + ")";
    };
    const std::string intervals =
        "SELECT " + key_columns + "p, t, bi - pbi AS din, bo - pbo AS dout, t - p AS len FROM (" +
        sessions_sql(values, true) + ") ARRAY JOIN " + points(2) + " AS t, " + previous(2, "started_at") + " AS p, " +
        points(3) + " AS bi, " + previous(3, "toInt64(0)") + " AS pbi, " + points(4) + " AS bo, " +
        previous(4, "toInt64(0)") + " AS pbo";
    // An interval of zero or negative length goes whole to the bucket of t.
    const std::string lo = "greatest(0, if(len > 0, " + floor_div_sql("p - " + first, length) + ", " +
                           floor_div_sql("t - " + first, length) + "))";
    const std::string hi = "least(" + last_index + ", if(len > 0, " + floor_div_sql("t - 1 - " + first, length) +
                           ", " + floor_div_sql("t - " + first, length) + "))";
    const std::string a = "(" + first + " + b * " + length + ")", e = "(" + a + " + " + length + ")";
    auto share = [&](const std::string& d) {
      return "if(len > 0, " + share_before_sql(d, e) + " - " + share_before_sql(d, a) + ", " + d + ")";
    };
    const std::string sql = "SELECT " + key_columns + "b, sum(if(len > 0, least(t, " + e + ") - greatest(p, " + a +
                            "), len)), sum(" + share("din") + "), sum(" + share("dout") + ") FROM (SELECT " +
                            key_columns + "p, t, din, dout, len, " + bucket_range_sql(lo, hi) + " AS b FROM (" +
                            intervals + ")) GROUP BY " + key_columns + "b FORMAT TabSeparated";
    auto rows = client_.query(sql, values);
    if (!rows) return Error{rows.error()};
    Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
      if (row.size() != dims + 4) return;
      auto key = read_key(row, dims);
      const auto bucket = static_cast<std::size_t>(std::stoll(*row[dims]));
      auto g = groups.find(key);
      if (g == groups.end() || bucket >= count) return;
      g->second.viewtime[bucket] = std::stoll(*row[dims + 1]);
      g->second.bytes_in[bucket] = std::stoll(*row[dims + 2]);
      g->second.bytes_out[bucket] = std::stoll(*row[dims + 3]);
    });
    if (!parsed) return Error{parsed.error()};
  }

  if (need_intervals && !groups.empty()) {
    QueryValues values;
    const std::string sql = "SELECT " + key_columns + "started_at, end_t FROM (" + sessions_sql(values, false) +
                            ") FORMAT TabSeparated";
    auto rows = client_.query(sql, values);
    if (!rows) return Error{rows.error()};
    Status parsed = for_each_tsv_row(*rows, [&](TsvRow& row) {
      if (row.size() != dims + 2) return;
      auto key = read_key(row, dims);
      auto g = groups.find(key);
      if (g != groups.end()) g->second.intervals.push_back({std::stoll(*row[dims]), std::stoll(*row[dims + 1])});
    });
    if (!parsed) return Error{parsed.error()};
  }

  Timeseries ts;
  ts.first_bucket = b.first, ts.bucket_ms = b.length, ts.bucket_count = b.count;
  for (auto& [key, g] : groups) {
    std::vector<int64_t> ccu;
    if (need_intervals) ccu = max_concurrency(g.intervals, b.first, b.length, b.count);
    GroupSeries series{key, {}};
    for (Metric m : q.metrics) {
      switch (m) {
        case Metric::Sessions: series.values.push_back(g.sessions); break;
        case Metric::Views: series.values.push_back(g.views); break;
        case Metric::UniqueViewers: series.values.push_back(g.viewers); break;
        case Metric::Viewtime: series.values.push_back(g.viewtime); break;
        case Metric::BytesIn: series.values.push_back(g.bytes_in); break;
        case Metric::BytesOut: series.values.push_back(g.bytes_out); break;
        case Metric::Ccu: series.values.push_back(events ? g.sessions : ccu); break;  // events: distinct sessions
        case Metric::MaxCcu: series.values.push_back(ccu); break;
      }
    }
    ts.groups.push_back(std::move(series));
  }
  return ts;
}

Result<std::vector<GroupTotals>> ClickHouseStore::events(const ReportQuery& q) {
  auto ts = report(q, {q.from, q.to - q.from, 1}, true);
  if (!ts) return Error{ts.error()};
  std::vector<GroupTotals> result;
  for (GroupSeries& g : ts->groups) {
    GroupTotals totals{std::move(g.key), {}};
    for (const auto& values : g.values) totals.values.push_back(values.at(0));
    result.push_back(std::move(totals));
  }
  return result;
}

Result<Timeseries> ClickHouseStore::timeseries(const ReportQuery& q) {
  const int64_t first = floor_to(q.from, q.bucket_ms);
  const int64_t count = (floor_to(q.to - 1, q.bucket_ms) + q.bucket_ms - first) / q.bucket_ms;
  return report(q, {first, q.bucket_ms, count}, false);
}

}  // namespace streamtally::collector
