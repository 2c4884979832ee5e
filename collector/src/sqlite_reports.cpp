// /v1/events and /v1/timeseries on SQLite.
//
// Two engines give the same numbers:
//  - rollups: additive counters per minute/hour/day and dimension set. Used when
//    every dimension and filter is a rollup dimension and every metric is additive
//    (sessions, views, viewtime, bytes). Cost grows with the number of buckets and
//    dimension sets, not with sessions.
//  - scan: reads the sessions open in the range (index on started_at, bounded by
//    the longest session seen) for unique_viewers, ccu/max_ccu and the unbounded
//    dimensions (user_id, referer_domain, tags). The started_at range is split into
//    slices read in parallel, one per core, on connections that share one snapshot.
// Sessions open in [F, T) = started before T minus ended before F (prefix sums).
#include <algorithm>
#include <future>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "attribution.hpp"
#include "ccu_sweep.hpp"
#include "sql_builder.hpp"
#include "sqlite_schema.hpp"
#include "sqlite_store.hpp"
#include "update_chain.hpp"

namespace streamtally::collector {
namespace {

using GroupKey = std::vector<std::string>;

struct Piece {
  std::size_t level;
  int64_t from, to;  // [from, to), aligned to the level
};

int64_t ceil_to(int64_t t, int64_t length) { return -floor_to(-t, length); }

// Splits a minute-aligned [from, to) into the fewest minute/hour/day ranges.
std::vector<Piece> decompose(int64_t from, int64_t to) {
  std::vector<Piece> pieces;
  for (std::size_t level = 0; level + 1 < kRollupLevelCount && from < to; ++level) {
    const int64_t next = kRollupLevelMs[level + 1];
    const int64_t a = std::min(ceil_to(from, next), to);
    if (a > from) pieces.push_back({level, from, a});
    from = a;
    const int64_t b = std::max(floor_to(to, next), from);
    if (b < to) pieces.push_back({level, b, to});
    to = b;
  }
  if (from < to) pieces.push_back({kRollupLevelCount - 1, from, to});
  return pieces;
}

// The rollup family that holds every dimension and filter of the query and can
// compute its metrics; none -> the session scan.
std::optional<std::size_t> rollup_family_for(const ReportQuery& q, bool timeseries) {
  for (Metric m : q.metrics) {
    if (m == Metric::UniqueViewers || m == Metric::MaxCcu) return std::nullopt;
    if (m == Metric::Ccu && timeseries) return std::nullopt;
  }
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const auto& dims = kRollupFamilies[f].dimensions;
    auto held = [&](const std::string& d) { return std::find(dims.begin(), dims.end(), d) != dims.end(); };
    bool all = std::all_of(q.dimensions.begin(), q.dimensions.end(), held);
    for (const auto& w : q.where) all = all && held(w.dimension);
    if (all) return f;
  }
  return std::nullopt;
}

// The combinations of a family a query selects: dims id -> its group key. Read
// from the family's small dims table; the where filter is applied here, once per
// combination, so the rollup rows are read without a join.
Result<std::unordered_map<int64_t, GroupKey>> selected_combinations(sqlite3* db, std::size_t family,
                                                                    const ReportQuery& q) {
  const RollupFamily& f = kRollupFamilies[family];
  std::string columns;
  for (std::size_t i = 0; i < f.dimensions.size(); ++i) columns += std::string(", ") + f.dimensions[i];
  Statement st(db, std::string("SELECT id") + columns + " FROM " + f.dims_table);
  if (!st.ok()) return Error{st.error()};
  auto column_of = [&](const std::string& d) {
    return static_cast<int>(std::find(f.dimensions.begin(), f.dimensions.end(), d) - f.dimensions.begin()) + 1;
  };
  std::unordered_map<int64_t, GroupKey> selected;
  while (st.step()) {
    bool keep = true;
    for (const WhereClause& w : q.where) {
      const std::string v = st.text(column_of(w.dimension));
      keep = keep && std::find(w.values.begin(), w.values.end(), v) != w.values.end();
    }
    if (!keep) continue;
    GroupKey key;
    for (const auto& d : q.dimensions) key.push_back(st.text(column_of(d)));
    selected.emplace(st.int64(0), std::move(key));
  }
  if (st.failed()) return Error{st.error()};
  return selected;
}

// Sums rollup counters per group (and per bucket index when bucket_ms > 0).
Status sum_rollups(sqlite3* db, std::size_t family, const ReportQuery& q, const std::vector<Piece>& pieces,
                   int64_t first_bucket, int64_t bucket_ms, std::map<std::pair<GroupKey, int64_t>, Counters>& out) {
  auto selected = selected_combinations(db, family, q);
  if (!selected) return Error{selected.error()};
  // Summed per (combination, bucket index) in a hash map, then folded into groups.
  std::unordered_map<int64_t, std::unordered_map<int64_t, Counters>> sums;  // dims id -> index -> counters
  for (const Piece& piece : pieces) {
    Statement st(db, std::string("SELECT bucket, dims, starts, views, ends, bytes_in, bytes_out, viewtime_ms FROM ") +
                         kRollupFamilies[family].tables[piece.level] + " WHERE bucket >= ?1 AND bucket < ?2");
    if (!st.ok()) return Error{st.error()};
    st.bind(1, piece.from).bind(2, piece.to);
    while (st.step()) {
      const int64_t dims = st.int64(1);
      if (!selected->count(dims)) continue;
      const int64_t index = bucket_ms > 0 ? (st.int64(0) - first_bucket) / bucket_ms : 0;
      Counters& c = sums[dims][index];
      c.starts += st.int64(2), c.views += st.int64(3), c.ends += st.int64(4);
      c.bytes_in += st.int64(5), c.bytes_out += st.int64(6), c.viewtime_ms += st.int64(7);
    }
    if (st.failed()) return Error{st.error()};
  }
  for (const auto& [dims, by_index] : sums) {
    const GroupKey& key = selected->at(dims);
    for (const auto& [index, c] : by_index) out[{key, index}] += c;
  }
  return Status::Ok();
}

int64_t additive_value(Metric m, const Counters& c) {
  switch (m) {
    case Metric::Views: return c.views;
    case Metric::Viewtime: return c.viewtime_ms;
    case Metric::BytesOut: return c.bytes_out;
    case Metric::BytesIn: return c.bytes_in;
    default: return 0;
  }
}

// One session as the scan engine reads it.
struct ScannedSession {
  int64_t id = 0, started_at = 0, end_t = 0;
  bool play = false;
  std::string viewer;  // client_ip + '\n' + user_agent
  GroupKey key;
};

// What the scan reads of a session beyond started_at, end_t and the dimensions. Every
// column costs a little per session, and a ccu scan at 10M sessions reads ~400k of
// them, so a column is read only when a metric needs it.
struct ScanColumns {
  bool id = false;      // the update chain: viewtime, bytes
  bool type = false;    // views
  bool viewer = false;  // unique_viewers
};

// Reads the sessions that started in [starts.first, starts.second) and are open at or
// after `from`: started_at, end_t and type come from the covering index
// sessions_by_start; the row itself only for viewers, chains, dimensions.
Status scan_sessions(sqlite3* db, const ReportQuery& q, std::pair<int64_t, int64_t> starts, int64_t from,
                     ScanColumns columns, const std::function<void(ScannedSession&&)>& visit) {
  SqlBuilder sql;
  std::string text = "SELECT s.started_at, s.end_t";
  int next = 2;
  auto add = [&](bool wanted, const char* column) {
    if (!wanted) return -1;
    text += std::string(", ") + column;
    return next++;
  };
  const int id = add(columns.id, "s.id"), type = add(columns.type, "s.type");
  const int ip = add(columns.viewer, "s.client_ip"), user_agent = add(columns.viewer, "s.user_agent");
  const int dimensions = next;
  for (const auto& d : q.dimensions) text += ", " + session_dimension_sql(d, sql);
  text += " FROM sessions AS s WHERE s.started_at >= " + sql.param(starts.first) +
          " AND s.started_at < " + sql.param(starts.second) + " AND s.end_t >= " + sql.param(from);
  text += where_sql(q.where, sql);
  Statement st(db, text);
  if (!st.ok()) return Error{st.error()};
  sql.bind_all(st);
  while (st.step()) {
    ScannedSession s;
    s.started_at = st.int64(0), s.end_t = st.int64(1);
    if (id >= 0) s.id = st.int64(id);
    if (type >= 0) s.play = st.text_equals(type, "play");  // no string copy: this loop runs per session
    if (ip >= 0) s.viewer = st.text(ip) + '\n' + st.text(user_agent);
    for (std::size_t i = 0; i < q.dimensions.size(); ++i) s.key.push_back(st.text(dimensions + static_cast<int>(i)));
    visit(std::move(s));
  }
  if (st.failed()) return Error{st.error()};
  return Status::Ok();
}

// Everything the scan engine accumulates for one group, per bucket (events: one bucket).
struct ScanGroup {
  std::vector<int64_t> sessions, views;
  std::vector<Counters> additive;
  std::vector<std::unordered_set<std::string>> viewers;
  std::vector<OpenInterval> intervals;
};

using ScanGroups = std::map<GroupKey, ScanGroup>;

// One slice of the scan: the sessions that started in `starts`, accumulated per group
// over count buckets of `length` from `first`.
Result<ScanGroups> scan_slice(sqlite3* db, const ReportQuery& q, int64_t first, int64_t length, int64_t count,
                              std::pair<int64_t, int64_t> starts) {
  const int64_t range_end = first + length * count;
  const bool need_chain = q.wants({Metric::Viewtime, Metric::BytesIn, Metric::BytesOut});
  const bool need_viewers = q.wants({Metric::UniqueViewers});
  const bool need_intervals = q.wants({Metric::Ccu, Metric::MaxCcu});
  const bool need_views = q.wants({Metric::Views});
  Statement chain(db, kReadChainSql);
  if (!chain.ok()) return Error{chain.error()};

  ScanGroups groups;
  std::string chain_error;
  bool too_many = false;
  auto last = groups.end();  // a session mostly falls in the group of the one before
  auto bucket_of = [&](int64_t t) { return (floor_to(t, length) - first) / length; };
  const ScanColumns columns{need_chain, need_views, need_viewers};
  Status st = scan_sessions(db, q, starts, first, columns, [&](ScannedSession&& s) {
    if (too_many) return;
    if (last == groups.end() || s.key != last->first) {
      bool inserted = false;
      std::tie(last, inserted) = groups.try_emplace(s.key);
      if (inserted && static_cast<int64_t>(groups.size()) * count > kMaxReportPoints) {
        too_many = true;
        return;
      }
      if (inserted) {
        ScanGroup& g = last->second;
        g.sessions.assign(count, 0);
        g.views.assign(count, 0);
        if (need_chain) g.additive.assign(count, Counters{});
        if (need_viewers) g.viewers.resize(count);
      }
    }
    ScanGroup& g = last->second;
    const int64_t lo = std::max<int64_t>(0, bucket_of(std::max(s.started_at, first)));
    const int64_t hi = std::min<int64_t>(count - 1, bucket_of(std::min(s.end_t, range_end - 1)));
    for (int64_t b = lo; b <= hi; ++b) {
      ++g.sessions[b];
      if (need_viewers) g.viewers[b].insert(s.viewer);
    }
    if (s.play && s.started_at >= first && s.started_at < range_end) ++g.views[bucket_of(s.started_at)];
    if (need_intervals) g.intervals.push_back({s.started_at, s.end_t});
    if (need_chain) {
      SessionShape shape{s.started_at, s.play, {}};  // play only counts views, not read here
      if (Status read = read_chain(chain, s.id, shape.chain); !read) chain_error = read.error();
      if (shape.chain.empty()) return;
      attribute_session(shape, +1, [&](int64_t minute, const Counters& c) {
        if (minute < first || minute >= range_end) return;
        Counters bytes_and_time;
        bytes_and_time.bytes_in = c.bytes_in, bytes_and_time.bytes_out = c.bytes_out;
        bytes_and_time.viewtime_ms = c.viewtime_ms;
        g.additive[bucket_of(minute)] += bytes_and_time;
      });
    }
  });
  if (!st) return Error{st.error()};
  if (!chain_error.empty()) return Error{chain_error};
  if (too_many)
    return Error{report_too_large_error()};
  return groups;
}

// Adds a later slice's groups into `into`. Slices are merged in started_at order, so
// each group's intervals stay sorted by start (what the ccu sweep expects).
void merge_slice(ScanGroups& into, ScanGroups&& slice) {
  for (auto& [key, g] : slice) {
    auto [it, inserted] = into.try_emplace(key, std::move(g));
    if (inserted) continue;
    ScanGroup& to = it->second;
    for (std::size_t b = 0; b < to.sessions.size(); ++b) {
      to.sessions[b] += g.sessions[b];
      to.views[b] += g.views[b];
      if (!to.additive.empty()) to.additive[b] += g.additive[b];
      if (!to.viewers.empty()) to.viewers[b].merge(g.viewers[b]);
    }
    to.intervals.insert(to.intervals.end(), g.intervals.begin(), g.intervals.end());
  }
}

// The scan engine for both endpoints: buckets of `length` from `first` over count
// buckets (events: one bucket covering the range). The sessions that may be open in it
// started in [first - max_session_ms, end); that range is cut into one slice per
// connection, each read on a thread of its own (the first on this one). The
// connections share one snapshot (SqliteStore::snapshot_readers).
Result<ScanGroups> run_scan(std::span<sqlite3* const> dbs, const ReportQuery& q, int64_t first, int64_t length,
                            int64_t count, int64_t max_session_ms) {
  const int64_t lo = first - max_session_ms, hi = first + length * count;
  const auto slices = static_cast<int64_t>(dbs.size());
  auto slice = [&](int64_t i) {
    return std::pair{lo + (hi - lo) * i / slices, lo + (hi - lo) * (i + 1) / slices};
  };
  std::vector<std::future<Result<ScanGroups>>> others;
  for (int64_t i = 1; i < slices; ++i)
    others.push_back(std::async(std::launch::async, [&, i] { return scan_slice(dbs[i], q, first, length, count, slice(i)); }));
  Result<ScanGroups> groups = scan_slice(dbs[0], q, first, length, count, slice(0));
  std::string error;
  for (auto& other : others) {  // every slice is waited for: they use this frame
    Result<ScanGroups> part = other.get();
    if (!part && error.empty()) error = part.error();
    if (part && groups) merge_slice(*groups, std::move(*part));
  }
  if (!groups) return Error{groups.error()};
  if (!error.empty()) return Error{error};
  if (static_cast<int64_t>(groups->size()) * count > kMaxReportPoints) return Error{report_too_large_error()};
  return groups;
}

int64_t scan_value(Metric m, const ScanGroup& g, std::size_t b, const std::vector<int64_t>& ccu) {
  switch (m) {
    case Metric::Sessions: return g.sessions[b];
    case Metric::Views: return g.views[b];
    case Metric::UniqueViewers: return static_cast<int64_t>(g.viewers[b].size());
    case Metric::Ccu:
    case Metric::MaxCcu: return ccu[b];
    default: return g.additive.empty() ? 0 : additive_value(m, g.additive[b]);
  }
}

}  // namespace

Result<std::vector<GroupTotals>> SqliteStore::events(const ReportQuery& q) {
  if (Status s = apply_before_read(); !s) return Error{s.error()};
  std::vector<GroupTotals> result;

  const auto family = rollup_family_for(q, false);
  if (!family) {
    auto readers = snapshot_readers();
    if (!readers) return Error{readers.error()};
    auto groups = run_scan((*readers)->connections(), q, q.from, q.to - q.from, 1, max_session_ms_);
    if (!groups) return Error{groups.error()};
    for (auto& [key, g] : *groups) {
      std::vector<int64_t> ccu;
      if (q.wants({Metric::MaxCcu})) ccu = max_concurrency(g.intervals, q.from, q.to - q.from, 1);
      GroupTotals totals{key, {}};
      for (Metric m : q.metrics)
        totals.values.push_back(m == Metric::Ccu ? g.sessions[0] : scan_value(m, g, 0, ccu));
      result.push_back(std::move(totals));
    }
    return result;
  }

  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  // Prefix sums before `from` (sessions still open then) and sums over the range.
  std::map<std::pair<GroupKey, int64_t>, Counters> before, within;
  if (Status s = sum_rollups(lease.get(), *family, q, decompose(0, q.from), 0, 0, before); !s) return Error{s.error()};
  if (Status s = sum_rollups(lease.get(), *family, q, decompose(q.from, q.to), 0, 0, within); !s) return Error{s.error()};
  std::map<GroupKey, std::pair<Counters, Counters>> merged;
  for (auto& [k, c] : before) merged[k.first].first += c;
  for (auto& [k, c] : within) merged[k.first].second += c;
  for (auto& [key, both] : merged) {
    const auto& [b, w] = both;
    const int64_t sessions = b.starts + w.starts - b.ends;
    if (sessions <= 0) continue;
    GroupTotals totals{key, {}};
    for (Metric m : q.metrics)
      totals.values.push_back(m == Metric::Sessions || m == Metric::Ccu ? sessions : additive_value(m, w));
    result.push_back(std::move(totals));
  }
  return result;
}

Result<Timeseries> SqliteStore::timeseries(const ReportQuery& q) {
  if (Status s = apply_before_read(); !s) return Error{s.error()};
  Timeseries ts;
  ts.bucket_ms = q.bucket_ms;
  ts.first_bucket = floor_to(q.from, q.bucket_ms);
  ts.bucket_count = (floor_to(q.to - 1, q.bucket_ms) + q.bucket_ms - ts.first_bucket) / q.bucket_ms;
  const auto count = static_cast<std::size_t>(ts.bucket_count);

  const auto family = rollup_family_for(q, true);
  if (!family) {
    auto readers = snapshot_readers();
    if (!readers) return Error{readers.error()};
    auto groups = run_scan((*readers)->connections(), q, ts.first_bucket, ts.bucket_ms, ts.bucket_count, max_session_ms_);
    if (!groups) return Error{groups.error()};
    for (auto& [key, g] : *groups) {
      std::vector<int64_t> ccu;
      if (q.wants({Metric::Ccu, Metric::MaxCcu}))
        ccu = max_concurrency(g.intervals, ts.first_bucket, ts.bucket_ms, ts.bucket_count);
      GroupSeries series{key, {}};
      for (Metric m : q.metrics) {
        std::vector<int64_t> points(count);
        for (std::size_t b = 0; b < count; ++b) points[b] = scan_value(m, g, b, ccu);
        series.values.push_back(std::move(points));
      }
      ts.groups.push_back(std::move(series));
    }
    return ts;
  }

  auto db = acquire_reader();
  if (!db) return Error{db.error()};
  ReadLease lease(*this, std::move(*db));
  // The coarsest rollup level whose buckets tile the requested bucket length.
  std::size_t level = 0;
  for (std::size_t l = 0; l < kRollupLevelCount; ++l)
    if (q.bucket_ms % kRollupLevelMs[l] == 0) level = l;
  const int64_t end = ts.first_bucket + ts.bucket_ms * ts.bucket_count;
  std::map<std::pair<GroupKey, int64_t>, Counters> before, within;
  if (Status s = sum_rollups(lease.get(), *family, q, decompose(0, ts.first_bucket), 0, 0, before); !s)
    return Error{s.error()};
  if (Status s = sum_rollups(lease.get(), *family, q, {{level, ts.first_bucket, end}}, ts.first_bucket, ts.bucket_ms, within);
      !s)
    return Error{s.error()};
  std::map<GroupKey, std::pair<Counters, std::vector<Counters>>> merged;
  for (auto& [k, c] : before) merged[k.first].first += c;
  for (auto& [k, c] : before) merged[k.first];
  for (auto& [k, c] : within) merged[k.first];
  if (static_cast<int64_t>(merged.size()) * ts.bucket_count > kMaxReportPoints)
    return Error{report_too_large_error()};
  for (auto& [k, c] : within) {
    auto& buckets = merged[k.first].second;
    if (buckets.empty()) buckets.resize(count);
    buckets[static_cast<std::size_t>(k.second)] += c;
  }
  for (auto& [key, both] : merged) {
    auto& [prefix, buckets] = both;
    if (buckets.empty()) buckets.resize(count);
    std::vector<int64_t> sessions(count);
    int64_t started = prefix.starts, ended = prefix.ends;
    bool any = false;
    for (std::size_t b = 0; b < count; ++b) {
      started += buckets[b].starts;
      sessions[b] = started - ended;  // started before the bucket's end, not ended before its start
      ended += buckets[b].ends;
      any = any || sessions[b] > 0;
    }
    if (!any) continue;
    GroupSeries series{key, {}};
    for (Metric m : q.metrics) {
      std::vector<int64_t> points(count);
      for (std::size_t b = 0; b < count; ++b)
        points[b] = m == Metric::Sessions ? sessions[b] : additive_value(m, buckets[b]);
      series.values.push_back(std::move(points));
    }
    ts.groups.push_back(std::move(series));
  }
  return ts;
}

}  // namespace streamtally::collector
