#include "report_api.hpp"

#include <algorithm>

#include "attribution.hpp"
#include "export_writers.hpp"
#include "query_params.hpp"

namespace streamtally::collector {
namespace {

using nlohmann::json;

constexpr int64_t kMaxBuckets = 50'000;

// Store errors are 500, except a report that is too large for the request.
ApiResponse store_error(const std::string& message);

ApiResponse ok_json(const json& body) { return {200, body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", ""}; }

json metric_value(Metric m, int64_t v) {
  if (m == Metric::Viewtime) return static_cast<double>(v) / 1000.0;  // seconds
  return v;
}

json dimensions_json(const std::vector<std::string>& names, const std::vector<std::string>& key) {
  json d = json::object();
  for (std::size_t i = 0; i < names.size(); ++i) d[names[i]] = key[i];
  return d;
}

// Reports cover the whole minutes that [from, to] touches.
void widen_to_minutes(ReportQuery& q, const TimeRange& range) {
  q.from = floor_to(range.from, kMinuteMs);
  q.to = floor_to(range.to, kMinuteMs) + kMinuteMs;
}

Result<ReportQuery> report_query(const QueryParams& p, int64_t now, bool dimensions_required) {
  ReportQuery q;
  auto dims = parse_dimensions(p, dimensions_required);
  if (!dims) return Error{dims.error()};
  auto metrics = parse_metrics(p);
  if (!metrics) return Error{metrics.error()};
  auto where = parse_where(p);
  if (!where) return Error{where.error()};
  auto range = parse_range(p, now);
  if (!range) return Error{range.error()};
  q.dimensions = std::move(*dims);
  q.metrics = std::move(*metrics);
  q.where = std::move(*where);
  widen_to_minutes(q, *range);
  return q;
}

Result<SessionsQuery> sessions_query(const QueryParams& p, int64_t now, const Store& store, int64_t max_limit) {
  SessionsQuery q;
  const std::string group = p.get("group", "all");
  if (group == "all") q.group = SessionGroup::All;
  else if (group == "stream") q.group = SessionGroup::Stream;
  else if (group == "server") q.group = SessionGroup::Server;
  else if (group == "user") q.group = SessionGroup::User;
  else if (group == "unique") q.group = SessionGroup::Unique;
  else return Error{"group: expected all, stream, server, user or unique"};

  auto range = parse_range(p, now);
  if (!range) return Error{range.error()};
  SessionFilter& f = q.filter;
  f.from = range->from, f.to = range->to;
  auto list = [&](const char* name, std::vector<std::string>& out) {
    const std::string raw = p.raw(name);
    if (raw.empty()) return;
    std::size_t pos = 0;
    while (pos <= raw.size()) {
      const std::size_t end = std::min(raw.find(',', pos), raw.size());
      out.push_back(percent_decode(std::string_view(raw).substr(pos, end - pos)));
      pos = end + 1;
    }
  };
  list("stream", f.streams);
  list("server", f.servers);
  list("protocol", f.protocols);
  for (const auto& proto : f.protocols)
    if (!parse_protocol(proto))
      return Error{"protocol: unknown \"" + proto.substr(0, 32) +
                   "\"; accepted: rtmp, hls, dash, http-progressive, http-flv, rtsp, srt, webrtc, tcp, udp, other"};
  if (p.has("user_id")) f.user_id = p.get("user_id");
  if (p.has("ip")) f.ip = p.get("ip");
  if (p.has("user_agent")) f.user_agent_contains = p.get("user_agent");
  if (p.has("type")) {
    f.type = p.get("type");
    if (*f.type != "play" && *f.type != "publish") return Error{"type: expected play or publish"};
  }
  auto min_d = parse_count(p, "min_duration", -1, 0, 100LL * 365 * 86400);
  if (!min_d) return Error{min_d.error()};
  if (*min_d >= 0) f.min_duration_ms = *min_d * 1000;
  auto max_d = parse_count(p, "max_duration", -1, 0, 100LL * 365 * 86400);
  if (!max_d) return Error{max_d.error()};
  if (*max_d >= 0) f.max_duration_ms = *max_d * 1000;

  std::string order = p.get("order", q.group == SessionGroup::All || q.group == SessionGroup::Unique ? "started_at"
                                                                                                   : "bytes_out");
  if (!p.has("order") && q.group != SessionGroup::All && q.group != SessionGroup::Unique) q.descending = true;
  if (order.starts_with("-")) q.descending = true, order = order.substr(1);
  const auto columns = store.session_columns(q.group);
  if (std::find(columns.begin(), columns.end(), order) == columns.end() || order == "tags") {
    std::string accepted;
    for (const auto& c : columns)
      if (c != "tags") accepted += (accepted.empty() ? "" : ", ") + c;
    return Error{"order: cannot order " + group + " by \"" + order.substr(0, 32) + "\"; accepted (prefix - for descending): " + accepted};
  }
  q.order_column = order;
  auto limit = parse_count(p, "limit", 100, 1, max_limit);
  if (!limit) return Error{limit.error()};
  auto offset = parse_count(p, "offset", 0, 0, INT64_MAX / 2);
  if (!offset) return Error{offset.error()};
  q.limit = *limit, q.offset = *offset;
  return q;
}

// Bucket length for bucket_limit=N: the smallest whole number of minutes whose
// epoch-aligned buckets cover [from, to) in at most N buckets.
int64_t bucket_for_limit(int64_t from, int64_t to, int64_t n) {
  int64_t length = std::max<int64_t>(1, (to - from + n * kMinuteMs - 1) / (n * kMinuteMs)) * kMinuteMs;
  auto buckets = [&](int64_t l) { return (floor_to(to - 1, l) - floor_to(from, l)) / l + 1; };
  while (buckets(length) > n) length += kMinuteMs;
  return length;
}

ApiResponse store_error(const std::string& message) {
  return json_error(message.starts_with(kReportTooLarge) ? 400 : 500, message);
}

}  // namespace

ApiResponse json_error(int status, const std::string& message) {
  return {status, json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", ""};
}

ApiResponse ReportApi::events(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"dimensions", "metrics", "where", "from", "to"}); !s) return json_error(400, s.error());
  auto q = report_query(p, now, false);
  if (!q) return json_error(400, q.error());
  auto groups = store_.events(*q);
  if (!groups) return store_error(groups.error());
  json data = json::array();
  for (const GroupTotals& g : *groups) {
    json totals = json::object();
    for (std::size_t i = 0; i < q->metrics.size(); ++i)
      totals[std::string(metric_name(q->metrics[i]))] = metric_value(q->metrics[i], g.values[i]);
    data.push_back({{"dimensions", dimensions_json(q->dimensions, g.key)}, {"totals", std::move(totals)}});
  }
  return ok_json({{"data", std::move(data)}, {"from", q->from}, {"to", q->to}});
}

ApiResponse ReportApi::timeseries(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"dimensions", "metrics", "where", "from", "to", "bucket", "bucket_duration", "bucket_limit"});
      !s)
    return json_error(400, s.error());
  auto q = report_query(p, now, false);
  if (!q) return json_error(400, q.error());
  const bool has_bucket = p.has("bucket") || p.has("bucket_duration");
  if (has_bucket && p.has("bucket_limit")) return json_error(400, "bucket_limit: use either bucket or bucket_limit");
  if (p.has("bucket_limit")) {
    auto n = parse_count(p, "bucket_limit", 1, 1, kMaxBuckets);
    if (!n) return json_error(400, n.error());
    q->bucket_ms = bucket_for_limit(q->from, q->to, *n);
  } else {
    auto bucket = parse_bucket(p.has("bucket") ? p.get("bucket") : p.get("bucket_duration"));
    if (!bucket) return json_error(400, bucket.error());
    q->bucket_ms = *bucket;
  }
  const int64_t buckets = (floor_to(q->to - 1, q->bucket_ms) - floor_to(q->from, q->bucket_ms)) / q->bucket_ms + 1;
  if (buckets > kMaxBuckets)
    return json_error(400, "bucket: " + std::to_string(buckets) + " buckets in this range; at most " +
                               std::to_string(kMaxBuckets) + " (use a longer bucket or bucket_limit)");
  auto ts = store_.timeseries(*q);
  if (!ts) return store_error(ts.error());
  json body = json::object();
  for (std::size_t m = 0; m < q->metrics.size(); ++m) {
    json data = json::array();
    for (const GroupSeries& g : ts->groups) {
      json points = json::array();
      for (int64_t b = 0; b < ts->bucket_count; ++b)
        points.push_back({{"timestamp", ts->first_bucket + b * ts->bucket_ms},
                          {"value", metric_value(q->metrics[m], g.values[m][static_cast<std::size_t>(b)])}});
      data.push_back({{"dimensions", dimensions_json(q->dimensions, g.key)}, {"points", std::move(points)}});
    }
    body[std::string(metric_name(q->metrics[m]))] = {{"data", std::move(data)}};
  }
  return ok_json(body);
}

ApiResponse ReportApi::sessions(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"group", "stream", "user_id", "ip", "user_agent", "protocol", "server", "type",
                         "min_duration", "max_duration", "from", "to", "order", "limit", "offset"});
      !s)
    return json_error(400, s.error());
  auto q = sessions_query(p, now, store_, 10'000);
  if (!q) return json_error(400, q.error());
  auto page = store_.sessions(*q);
  if (!page) return json_error(500, page.error());
  json rows = json::array();
  for (auto& row : page->rows) rows.push_back(std::move(row));
  return ok_json({{"total", page->total}, {"rows", std::move(rows)}});
}

ApiResponse ReportApi::top(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"by", "of", "month", "limit"}); !s) return json_error(400, s.error());
  const std::string by = p.get("by", "viewtime"), of = p.get("of", "stream");
  if (by != "viewtime" && by != "bytes_out") return json_error(400, "by: expected viewtime or bytes_out");
  if (of != "stream" && of != "server") return json_error(400, "of: expected stream or server");
  int64_t month = month_start(now);
  if (p.has("month")) {
    auto m = parse_month(p.get("month"));
    if (!m) return json_error(400, m.error());
    month = *m;
  }
  auto limit = parse_count(p, "limit", 10, 1, 1000);
  if (!limit) return json_error(400, limit.error());
  ReportQuery q;
  q.dimensions = {of};
  q.metrics = {by == "viewtime" ? Metric::Viewtime : Metric::BytesOut};
  q.from = month;
  q.to = add_months(month, 1);
  auto groups = store_.events(q);
  if (!groups) return store_error(groups.error());
  std::sort(groups->begin(), groups->end(), [](const GroupTotals& a, const GroupTotals& b) {
    return a.values[0] != b.values[0] ? a.values[0] > b.values[0] : a.key < b.key;
  });
  json rows = json::array();
  for (const GroupTotals& g : *groups) {
    if (static_cast<int64_t>(rows.size()) == *limit) break;
    rows.push_back({{"key", g.key[0]}, {"value", metric_value(q.metrics[0], g.values[0])}});
  }
  return ok_json({{"by", by}, {"of", of}, {"month", format_month(month)}, {"rows", std::move(rows)}});
}

ApiResponse ReportApi::month_to_date(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"at"}); !s) return json_error(400, s.error());
  int64_t at = now;
  if (p.has("at")) {
    auto t = parse_time(p.get("at"), "at");
    if (!t) return json_error(400, t.error());
    at = *t;
  }
  // Minute resolution: "so far" includes the minute holding `at`.
  const int64_t current_start = month_start(at);
  const int64_t current_end = floor_to(at, kMinuteMs) + kMinuteMs;
  const int64_t previous_start = add_months(current_start, -1);
  // The same moment of last month, clamped to its end (31 March -> end of February).
  const int64_t previous_same_end = std::min(previous_start + (current_end - current_start), current_start);

  struct Usage {
    int64_t playout = 0, ingest = 0;
  };
  auto usage = [&](int64_t from, int64_t to) -> Result<Usage> {
    ReportQuery q;
    q.dimensions = {"type"};
    q.metrics = {Metric::BytesOut, Metric::BytesIn};
    q.from = from, q.to = to;
    auto groups = store_.events(q);
    if (!groups) return Error{groups.error()};
    Usage u;
    for (const auto& g : *groups) {
      if (g.key[0] == "play") u.playout += g.values[0];
      else u.ingest += g.values[1];
    }
    return u;
  };
  auto current = usage(current_start, current_end);
  auto previous_same = usage(previous_start, previous_same_end);
  auto previous = usage(previous_start, current_start);
  if (!current || !previous_same || !previous)
    return json_error(500, !current ? current.error() : !previous_same ? previous_same.error() : previous.error());
  auto as_json = [](const Usage& u) {
    return json{{"total", u.playout + u.ingest}, {"playout", u.playout}, {"ingest", u.ingest}};
  };
  auto change = [](int64_t now_value, int64_t before) -> json {
    if (before == 0) return nullptr;  // no base to compare with
    return (static_cast<double>(now_value) - static_cast<double>(before)) * 100.0 / static_cast<double>(before);
  };
  return ok_json({{"at", at},
                  {"month", format_month(current_start)},
                  {"current", as_json(*current)},
                  {"previous_same_period", as_json(*previous_same)},
                  {"previous_month", as_json(*previous)},
                  {"change_pct",
                   {{"total", change(current->playout + current->ingest, previous_same->playout + previous_same->ingest)},
                    {"playout", change(current->playout, previous_same->playout)},
                    {"ingest", change(current->ingest, previous_same->ingest)}}}});
}

ApiResponse ReportApi::export_report(std::string_view query, int64_t now) const {
  const QueryParams p = QueryParams::parse(query);
  if (Status s = p.only({"format", "group", "stream", "user_id", "ip", "user_agent", "protocol", "server", "type",
                         "min_duration", "max_duration", "from", "to", "order", "limit", "offset"});
      !s)
    return json_error(400, s.error());
  const std::string format = p.get("format", "csv");
  if (format != "csv" && format != "xlsx") return json_error(400, "format: expected csv or xlsx");
  auto q = sessions_query(p, now, store_, 1'000'000);
  if (!q) return json_error(400, q.error());
  if (!p.has("limit")) q->limit = 1'000'000;
  auto page = store_.sessions(*q);
  if (!page) return json_error(500, page.error());
  const auto columns = store_.session_columns(q->group);
  const std::string name = "streamtally-sessions-" + p.get("group", "all");
  if (format == "csv")
    return {200, sessions_csv(columns, page->rows), "text/csv; charset=utf-8",
            "attachment; filename=\"" + name + ".csv\""};
  auto xlsx = sessions_xlsx(columns, page->rows);
  if (!xlsx) return json_error(500, xlsx.error());
  return {200, std::move(*xlsx), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "attachment; filename=\"" + name + ".xlsx\""};
}

}  // namespace streamtally::collector
