// End to end: a generated dataset goes through a real collector over HTTP; every
// endpoint and metric is compared with answers computed in session_dataset.cpp from
// the raw sessions. Then the same data, shuffled and with retried batches, into a
// second collector must give byte-identical answers, and a restart keeps them.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "test_store.hpp"
#include "collector_process.hpp"
#include "session_dataset.hpp"

namespace streamtally::test {
namespace {

using nlohmann::json;
using namespace std::chrono;

constexpr int64_t kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;

int64_t utc(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days(year(y) / month(m) / day(d)).time_since_epoch().count() * kDay + h * kHour + mi * kMinute +
         s * 1000LL;
}

const int64_t kOctober = utc(2026, 10, 1);
const int64_t kNovember = utc(2026, 11, 1);
const int64_t kBusy = utc(2026, 11, 3, 20);  // a three-hour evening with many overlapping sessions

std::string enc(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ",") {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string where_param(const std::vector<Where>& where) {
  std::string out;
  for (const Where& w : where) {
    if (!out.empty()) out += ";";
    out += enc(w.dimension) + "==";
    for (std::size_t i = 0; i < w.values.size(); ++i) out += (i ? "," : "") + enc(w.values[i]);
  }
  return out;
}

int64_t widen_from(int64_t t) { return t / kMinute * kMinute; }
int64_t widen_to(int64_t t) { return t / kMinute * kMinute + kMinute; }

struct Range {
  const char* name;
  int64_t from, to;  // as sent (inclusive, ms)
};

const std::vector<Range>& ranges() {
  static const std::vector<Range> r{
      {"everything", kOctober - kDay, kNovember + 10 * kDay},
      {"busy window, unaligned", kBusy + 17 * kMinute + 23'456, kBusy + 2 * kHour + 5 * kMinute + 11'111},
      {"one day", utc(2026, 10, 17, 3, 14, 15), utc(2026, 10, 18, 3, 14, 15)},
  };
  return r;
}

std::map<Key, MetricValues> events_from_json(const json& body, const std::vector<std::string>& dims) {
  std::map<Key, MetricValues> out;
  for (const auto& item : body.at("data")) {
    Key key;
    for (const auto& d : dims) key.push_back(item.at("dimensions").at(d).get<std::string>());
    MetricValues values;
    for (const auto& [m, v] : item.at("totals").items()) values[m] = v;
    EXPECT_EQ(out.count(key), 0u) << "duplicate group " << join(key);
    out[key] = values;
  }
  return out;
}

std::string describe(const std::map<Key, MetricValues>& m) {
  std::string s;
  for (const auto& [k, v] : m) {
    s += "  [" + join(k, "|") + "] ";
    for (const auto& [name, value] : v) s += name + "=" + value.dump() + " ";
    s += "\n";
  }
  return s;
}

class ReportAccuracy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    sessions_ = new std::vector<RawSession>(generate_sessions(11, 220, kOctober, 37 * kDay));
    auto busy = generate_sessions(12, 180, kBusy, 3 * kHour);
    sessions_->insert(sessions_->end(), busy.begin(), busy.end());
    oracle_ = new Oracle(*sessions_);
    collector_ = new CollectorProcess(dir_->file("a.db"));
    ASSERT_TRUE(collector_->started()) << read_file(collector_->log_path());

    // Updates in the order an edge would send them (by update time), 50 per batch.
    std::vector<std::pair<int64_t, std::string>> lines;
    for (const RawSession& s : *sessions_)
      for (std::size_t i = 0; i < s.updates.size(); ++i) lines.push_back({s.updates[i].updated_at, record_line(s, i)});
    std::stable_sort(lines.begin(), lines.end(), [](auto& a, auto& b) { return a.first < b.first; });
    total_updates_ = static_cast<int64_t>(lines.size());
    for (std::size_t i = 0; i < lines.size(); i += 50) {
      std::vector<std::string> batch;
      for (std::size_t j = i; j < std::min(lines.size(), i + 50); ++j) batch.push_back(lines[j].second);
      batches_.push_back(batch);
    }
    for (std::size_t b = 0; b < batches_.size(); ++b) {
      const HttpResponse r = collector_->post_lines(batches_[b], "batch-" + std::to_string(b));
      ASSERT_EQ(r.status, 200) << r.body;
      const json answer = json::parse(r.body);
      accepted_ += answer.at("accepted").get<int64_t>();
      duplicates_ += answer.at("duplicates").get<int64_t>();
    }
  }
  static void TearDownTestSuite() {
    delete collector_;
    delete oracle_;
    delete sessions_;
    delete dir_;
  }

  // Every query of the suite, for the identical-answers checks.
  static std::vector<std::string> all_queries();

  void expect_events(const std::vector<std::string>& dims, const std::vector<std::string>& metrics,
                     const std::vector<Where>& where, const Range& range) {
    const std::string query = "/v1/events?dimensions=" + join(dims) + "&metrics=" + join(metrics) +
                              "&where=" + where_param(where) + "&from=" + std::to_string(range.from) +
                              "&to=" + std::to_string(range.to);
    const json body = collector_->get_json(query);
    const auto got = events_from_json(body, dims);
    const auto want = oracle_->events(dims, metrics, where, widen_from(range.from), widen_to(range.to));
    EXPECT_EQ(got, want) << query << " (" << range.name << ")\n got:\n"
                         << describe(got) << " want:\n"
                         << describe(want);
    EXPECT_FALSE(want.empty()) << "a query that selects nothing proves little: " << query;
  }

  void expect_timeseries(const std::vector<std::string>& dims, const std::vector<std::string>& metrics,
                         const std::vector<Where>& where, const Range& range, const std::string& bucket_param,
                         int64_t bucket_ms) {
    const std::string query = "/v1/timeseries?dimensions=" + join(dims) + "&metrics=" + join(metrics) +
                              "&where=" + where_param(where) + "&from=" + std::to_string(range.from) +
                              "&to=" + std::to_string(range.to) + "&" + bucket_param;
    const json body = collector_->get_json(query);
    const int64_t from = widen_from(range.from), to = widen_to(range.to);
    const int64_t first = from / bucket_ms * bucket_ms;
    const int64_t count = ((to - 1) / bucket_ms * bucket_ms + bucket_ms - first) / bucket_ms;
    const auto want = oracle_->timeseries(dims, metrics, where, first, bucket_ms, count);
    ASSERT_FALSE(want.empty()) << query;
    for (const auto& m : metrics) {
      ASSERT_TRUE(body.contains(m)) << query;
      std::map<Key, std::vector<json>> got;
      for (const auto& item : body.at(m).at("data")) {
        Key key;
        for (const auto& d : dims) key.push_back(item.at("dimensions").at(d).get<std::string>());
        std::vector<json> values;
        int64_t expected_ts = first;
        for (const auto& p : item.at("points")) {
          EXPECT_EQ(p.at("timestamp").get<int64_t>(), expected_ts) << query;
          expected_ts += bucket_ms;
          values.push_back(p.at("value"));
        }
        got[key] = values;
      }
      std::map<Key, std::vector<json>> expected;
      for (const auto& [key, series] : want) expected[key] = series.at(m);
      EXPECT_EQ(got.size(), expected.size()) << query << " metric " << m;
      for (const auto& [key, values] : expected) {
        ASSERT_TRUE(got.count(key)) << query << " metric " << m << " missing group " << join(key);
        EXPECT_EQ(json(got[key]), json(values)) << query << " metric " << m << " group " << join(key);
      }
    }
  }

  static TempDir* dir_;
  static std::vector<RawSession>* sessions_;
  static Oracle* oracle_;
  static CollectorProcess* collector_;
  static std::vector<std::vector<std::string>> batches_;
  static int64_t total_updates_, accepted_, duplicates_;
};

TempDir* ReportAccuracy::dir_ = nullptr;
std::vector<RawSession>* ReportAccuracy::sessions_ = nullptr;
Oracle* ReportAccuracy::oracle_ = nullptr;
CollectorProcess* ReportAccuracy::collector_ = nullptr;
std::vector<std::vector<std::string>> ReportAccuracy::batches_;
int64_t ReportAccuracy::total_updates_ = 0, ReportAccuracy::accepted_ = 0, ReportAccuracy::duplicates_ = 0;

const std::string kSqlLooking = "x'); DROP TABLE sessions;--";

TEST_F(ReportAccuracy, IngestAcknowledgesEveryUpdateOnce) {
  EXPECT_EQ(accepted_, total_updates_);
  EXPECT_EQ(duplicates_, 0);
  // The same batch again under a new key: all duplicates, nothing changes.
  const json before = collector_->get_json("/v1/events?metrics=sessions,bytes_out&from=0&to=" +
                                           std::to_string(kNovember + 40 * kDay));
  const HttpResponse again = collector_->post_lines(batches_[3], "batch-3-resent-under-another-key");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body).at("accepted"), 0);
  EXPECT_EQ(json::parse(again.body).at("duplicates").get<std::size_t>(), batches_[3].size());
  // The same key again: a replay, reported as such.
  const HttpResponse replay = collector_->post_lines(batches_[3], "batch-3");
  ASSERT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(json::parse(replay.body).at("replayed"), true);
  EXPECT_EQ(json::parse(replay.body).at("accepted"), 0);
  EXPECT_EQ(collector_->get_json("/v1/events?metrics=sessions,bytes_out&from=0&to=" +
                                 std::to_string(kNovember + 40 * kDay)),
            before);
}

TEST_F(ReportAccuracy, EventsFromRollupsMatchTheRawSessions) {
  const std::vector<std::string> additive{"sessions", "views", "viewtime", "bytes_out", "bytes_in", "ccu"};
  for (const Range& r : ranges()) {
    expect_events({}, additive, {}, r);
    expect_events({"stream", "type"}, additive, {}, r);
    expect_events({"country", "device_type", "os", "browser"}, {"sessions", "views", "bytes_out"}, {}, r);
    expect_events({"server", "host", "protocol"}, {"sessions", "viewtime", "bytes_in"}, {}, r);
    expect_events({"stream"}, {"sessions", "bytes_out"}, {{"stream", {"live/a", "live/b"}}, {"type", {"play"}}}, r);
  }
}

TEST_F(ReportAccuracy, EventsFromTheSessionScanMatchTheRawSessions) {
  for (const Range& r : ranges()) {
    expect_events({}, {"unique_viewers", "max_ccu", "sessions", "bytes_out", "viewtime", "views"}, {}, r);
    expect_events({"user_id"}, {"sessions", "views", "bytes_out", "viewtime", "unique_viewers"}, {}, r);
    expect_events({"referer_domain"}, {"sessions", "bytes_in"}, {}, r);
    expect_events({"tag.event"}, {"sessions", "bytes_out", "max_ccu"}, {}, r);
    expect_events({"stream", "protocol"}, {"max_ccu"}, {}, r);
  }
  expect_events({"type"}, {"sessions", "bytes_out"}, {{"user_id", {"user-3", "user-5"}}}, ranges()[0]);
  expect_events({"country"}, {"sessions", "bytes_out"}, {{"tag.tier", {"gold"}}}, ranges()[0]);
}

TEST_F(ReportAccuracy, WhereValuesAreDataNeverSql) {
  expect_events({"stream"}, {"sessions", "bytes_out"}, {{"stream", {kSqlLooking}}}, ranges()[0]);
  expect_events({"stream"}, {"sessions", "unique_viewers"}, {{"stream", {kSqlLooking, "live/ünïcode"}}}, ranges()[0]);
  // Still all there afterwards.
  const json all = collector_->get_json("/v1/sessions?from=0&to=" + std::to_string(kNovember + 40 * kDay) + "&limit=1");
  EXPECT_EQ(all.at("total").get<std::size_t>(), sessions_->size());
}

TEST_F(ReportAccuracy, TimeseriesMatchTheRawSessions) {
  const Range& busy = ranges()[1];
  const std::vector<std::string> additive{"sessions", "views", "bytes_out", "bytes_in", "viewtime"};
  expect_timeseries({}, additive, {}, busy, "bucket=1m", kMinute);
  expect_timeseries({"stream"}, additive, {}, busy, "bucket=5m", 5 * kMinute);
  expect_timeseries({}, additive, {}, busy, "bucket=7m", 7 * kMinute);
  expect_timeseries({}, additive, {}, {"two days", kBusy - kDay, kBusy + kDay}, "bucket=1h", kHour);
  expect_timeseries({"type"}, additive, {}, ranges()[0], "bucket=1d", kDay);
  expect_timeseries({}, {"ccu", "unique_viewers", "sessions"}, {}, busy, "bucket=5m", 5 * kMinute);
  expect_timeseries({"stream"}, {"ccu"}, {{"type", {"play"}}}, busy, "bucket_duration=1m", kMinute);
  expect_timeseries({"browser"}, {"ccu", "bytes_out"}, {}, {"two days", kBusy - kDay, kBusy + kDay}, "bucket=1h",
                    kHour);
}

TEST_F(ReportAccuracy, BucketLimitPicksTheSmallestAlignedBucket) {
  for (int64_t n : {1, 24}) {
    for (const Range& r : {ranges()[0], ranges()[1]}) {
      const int64_t from = widen_from(r.from), to = widen_to(r.to);
      int64_t length = kMinute;  // the naive search: every whole minute from 1 up
      while (((to - 1) / length - from / length + 1) > n) length += kMinute;
      expect_timeseries({"stream"}, {"ccu", "sessions"}, {}, r, "bucket_limit=" + std::to_string(n), length);
    }
  }
}

// /v1/sessions?group=all: open at some instant of [from, to], ordered by started_at.
TEST_F(ReportAccuracy, SessionListFiltersOrderAndPaging) {
  const Range& r = ranges()[1];
  const std::string range = "&from=" + std::to_string(r.from) + "&to=" + std::to_string(r.to);
  struct Case {
    std::string params;
    std::function<bool(const RawSession&)> keep;
  };
  const std::vector<Case> cases{
      {"", [](const RawSession&) { return true; }},
      {"&stream=live%2Fa", [](const RawSession& s) { return s.stream == "live/a"; }},
      {"&protocol=hls,dash", [](const RawSession& s) { return s.protocol == "hls" || s.protocol == "dash"; }},
      {"&server=srv-1", [](const RawSession& s) { return s.server_id == "srv-1"; }},
      {"&user_id=user-3", [](const RawSession& s) { return s.user_id == "user-3"; }},
      {"&ip=8.8.8.8", [](const RawSession& s) { return s.client_ip == "8.8.8.8"; }},
      {"&user_agent=VLC", [](const RawSession& s) { return s.user_agent.find("VLC") != std::string::npos; }},
      {"&type=publish", [](const RawSession& s) { return s.type == "publish"; }},
      {"&min_duration=60&max_duration=300",
       [](const RawSession& s) { return s.end() - s.started_at >= 60'000 && s.end() - s.started_at <= 300'000; }},
      {"&stream=" + enc(kSqlLooking), [](const RawSession& s) { return s.stream == kSqlLooking; }},
  };
  for (const Case& c : cases) {
    std::vector<const RawSession*> want;
    for (const RawSession* s : oracle_->open_sessions(r.from, r.to))
      if (c.keep(*s)) want.push_back(s);
    std::sort(want.begin(), want.end(), [](auto* a, auto* b) { return a->started_at < b->started_at; });
    ASSERT_FALSE(want.empty()) << c.params;
    const json body = collector_->get_json("/v1/sessions?group=all&limit=10000" + range + c.params);
    ASSERT_EQ(body.at("total").get<std::size_t>(), want.size()) << c.params;
    ASSERT_EQ(body.at("rows").size(), want.size()) << c.params;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const json& row = body.at("rows")[i];
      const RawSession& s = *want[i];
      EXPECT_EQ(row.at("session_id"), s.session_id) << c.params << " row " << i;
      EXPECT_EQ(row.at("bytes_out"), s.last().bytes_out);
      EXPECT_EQ(row.at("seq"), s.last().seq);
      EXPECT_EQ(row.at("state"), s.last().ended_at ? "closed" : "open");
      EXPECT_EQ(row.at("viewtime"), static_cast<double>(s.last().t() - s.started_at) / 1000.0);
      EXPECT_EQ(row.at("country"), s.country);
      EXPECT_EQ(row.at("browser"), s.browser);
      EXPECT_EQ(row.at("referer_domain"), s.referer_domain);
      EXPECT_EQ(row.at("tags"), json(s.tags));
    }
  }
  // Paging and descending order.
  const json page = collector_->get_json("/v1/sessions?limit=7&offset=7&order=-bytes_out" + range);
  std::vector<const RawSession*> all = oracle_->open_sessions(r.from, r.to);
  std::sort(all.begin(), all.end(), [](auto* a, auto* b) {
    return a->last().bytes_out != b->last().bytes_out ? a->last().bytes_out > b->last().bytes_out
                                                       : std::tie(a->server_id, a->session_id) <
                                                             std::tie(b->server_id, b->session_id);
  });
  ASSERT_EQ(page.at("rows").size(), 7u);
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(page.at("rows")[i].at("session_id"), all[7 + i]->session_id);
}

TEST_F(ReportAccuracy, SessionGroupsByStreamServerUserAndUnique) {
  const Range& r = ranges()[0];
  const std::string range = "&from=" + std::to_string(r.from) + "&to=" + std::to_string(r.to) + "&limit=10000";
  const auto open = oracle_->open_sessions(r.from, r.to);
  struct Totals {
    int64_t sessions = 0, views = 0, bytes_out = 0, viewtime_ms = 0;
  };
  auto add = [](Totals& t, const RawSession& s) {
    ++t.sessions;
    t.views += s.type == "play";
    t.bytes_out += s.last().bytes_out;
    t.viewtime_ms += s.last().t() - s.started_at;
  };
  auto check = [&](const std::string& group, const char* key_field, const std::map<std::string, Totals>& want,
                   bool has_views) {
    const json body = collector_->get_json("/v1/sessions?group=" + group + range);
    ASSERT_EQ(body.at("total").get<std::size_t>(), want.size()) << group;
    std::map<std::string, Totals> got;
    for (const auto& row : body.at("rows")) {
      std::string key;
      if (std::string(key_field) == "unique") {
        key = std::to_string(row.at("day").get<int64_t>()) + "|" + row.at("stream").get<std::string>() + "|" +
              row.at("protocol").get<std::string>() + "|" + row.at("client_ip").get<std::string>() + "|" +
              (row.at("user_id").is_null() ? "" : row.at("user_id").get<std::string>()) + "|" +
              row.at("referer").get<std::string>() + "|" + row.at("user_agent").get<std::string>();
      } else {
        key = row.at(key_field).get<std::string>();
      }
      Totals& t = got[key];
      t.sessions = row.at("sessions");
      if (has_views) t.views = row.at("views");
      t.bytes_out = row.at("bytes_out");
      t.viewtime_ms = std::llround(row.at("viewtime").get<double>() * 1000.0);
    }
    ASSERT_EQ(got.size(), want.size()) << group;
    for (const auto& [key, w] : want) {
      ASSERT_TRUE(got.count(key)) << group << " " << key;
      EXPECT_EQ(got[key].sessions, w.sessions) << group << " " << key;
      if (has_views) {
        EXPECT_EQ(got[key].views, w.views) << group << " " << key;
      }
      EXPECT_EQ(got[key].bytes_out, w.bytes_out) << group << " " << key;
      EXPECT_EQ(got[key].viewtime_ms, w.viewtime_ms) << group << " " << key;
    }
  };
  std::map<std::string, Totals> by_stream, by_server, by_user, unique;
  for (const RawSession* s : open) {
    add(by_stream[s->stream], *s);
    add(by_server[s->server_id], *s);
    if (s->user_id) add(by_user[*s->user_id], *s);
    const int64_t day = s->started_at / kDay * kDay;
    add(unique[std::to_string(day) + "|" + s->stream + "|" + s->protocol + "|" + s->client_ip + "|" +
               s->user_id.value_or("") + "|" + s->referer + "|" + s->user_agent],
        *s);
  }
  check("stream", "stream", by_stream, true);
  check("server", "server_id", by_server, true);
  check("user", "user_id", by_user, true);
  check("unique", "unique", unique, false);
}

TEST_F(ReportAccuracy, TopTenPerMonth) {
  for (int64_t month : {kOctober, kNovember}) {
    const std::string month_text = month == kOctober ? "2026-10" : "2026-11";
    const int64_t month_end = month == kOctober ? kNovember : utc(2026, 12, 1);
    for (const std::string by : {"viewtime", "bytes_out"}) {
      for (const std::string of : {"stream", "server"}) {
        auto totals = oracle_->events({of}, {by}, {}, month, month_end);
        std::vector<std::pair<json, std::string>> ranked;
        for (const auto& [key, v] : totals) ranked.push_back({v.at(by), key[0]});
        std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) {
          return a.first.template get<double>() != b.first.template get<double>()
                     ? a.first.template get<double>() > b.first.template get<double>()
                     : a.second < b.second;
        });
        const json body = collector_->get_json("/v1/top?by=" + by + "&of=" + of + "&month=" + month_text + "&limit=3");
        EXPECT_EQ(body.at("by"), by);
        EXPECT_EQ(body.at("of"), of);
        EXPECT_EQ(body.at("month"), month_text);
        ASSERT_EQ(body.at("rows").size(), std::min<std::size_t>(3, ranked.size()));
        for (std::size_t i = 0; i < body.at("rows").size(); ++i) {
          EXPECT_EQ(body.at("rows")[i].at("key"), ranked[i].second) << by << " of " << of << " " << month_text;
          EXPECT_EQ(body.at("rows")[i].at("value"), ranked[i].first) << by << " of " << of << " " << month_text;
        }
      }
    }
  }
}

TEST_F(ReportAccuracy, MonthToDateComparesWithTheSameMomentLastMonth) {
  const int64_t at = utc(2026, 11, 5, 12, 34, 56);
  const int64_t so_far_end = at / kMinute * kMinute + kMinute;  // the minute holding `at` counts
  auto usage = [&](int64_t from, int64_t to) {
    int64_t playout = 0, ingest = 0;
    for (const RawSession& s : *sessions_) {
      if (s.type == "play") playout += Oracle::bytes_in_range(s, true, from, to);
      else ingest += Oracle::bytes_in_range(s, false, from, to);
    }
    return json{{"total", playout + ingest}, {"playout", playout}, {"ingest", ingest}};
  };
  const json current = usage(kNovember, so_far_end);
  const json same = usage(kOctober, kOctober + (so_far_end - kNovember));
  const json previous = usage(kOctober, kNovember);
  const json body = collector_->get_json("/v1/usage/month-to-date?at=2026-11-05T12:34:56Z");
  EXPECT_EQ(body.at("at"), at);
  EXPECT_EQ(body.at("current"), current);
  EXPECT_EQ(body.at("previous_same_period"), same);
  EXPECT_EQ(body.at("previous_month"), previous);
  for (const char* k : {"total", "playout", "ingest"}) {
    const double expected = (current.at(k).get<double>() - same.at(k).get<double>()) * 100.0 / same.at(k).get<double>();
    EXPECT_NEAR(body.at("change_pct").at(k).get<double>(), expected, 1e-9 * std::abs(expected) + 1e-12) << k;
  }
  ASSERT_GT(same.at("total").get<int64_t>(), 0);
  ASSERT_GT(current.at("total").get<int64_t>(), 0);
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field.push_back('"'), ++i;
      else if (c == '"') quoted = false;
      else field.push_back(c);
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\r') {
    } else if (c == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field.push_back(c);
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

TEST_F(ReportAccuracy, CsvAndXlsxExport) {
  const Range& r = ranges()[1];
  const HttpResponse csv = collector_->get("/v1/export?format=csv&from=" + std::to_string(r.from) +
                                           "&to=" + std::to_string(r.to));
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.headers.at("content-type").rfind("text/csv", 0), 0u);
  const auto rows = parse_csv(csv.body);
  auto want = oracle_->open_sessions(r.from, r.to);
  std::sort(want.begin(), want.end(), [](auto* a, auto* b) { return a->started_at < b->started_at; });
  ASSERT_EQ(rows.size(), want.size() + 1);
  const auto& header = rows[0];
  const auto column = [&](const char* name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  ASSERT_LT(column("user_agent"), header.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(rows[i + 1].size(), header.size()) << "row " << i;
    EXPECT_EQ(rows[i + 1][column("session_id")], want[i]->session_id);
    EXPECT_EQ(rows[i + 1][column("user_agent")], want[i]->user_agent);  // commas inside, quoted
    EXPECT_EQ(rows[i + 1][column("bytes_out")], std::to_string(want[i]->last().bytes_out));
  }
  const HttpResponse xlsx = collector_->get("/v1/export?format=xlsx&group=stream&from=" + std::to_string(r.from) +
                                            "&to=" + std::to_string(r.to));
  ASSERT_EQ(xlsx.status, 200);
  EXPECT_EQ(xlsx.body.substr(0, 2), "PK");  // a zip container
  EXPECT_GT(xlsx.body.size(), 1000u);
}

double metric(const std::string& text, const std::string& name) {
  const auto pos = text.find("\n" + name + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + name.size() + 2));
}

TEST_F(ReportAccuracy, MetricsAndHealth) {
  collector_->get_json("/v1/events?metrics=sessions");  // at least one query to time
  const HttpResponse m = collector_->get("/metrics");
  ASSERT_EQ(m.status, 200);
  // Ingest: every update accepted once, whatever was re-sent.
  EXPECT_EQ(metric(m.body, "streamtally_collector_ingest_records_total"), static_cast<double>(total_updates_));
  EXPECT_EQ(metric(m.body, "streamtally_collector_store_sessions"), static_cast<double>(sessions_->size()));
  // ClickHouse compresses its columns: ~87 kB here, where SQLite's files take several MB.
  EXPECT_GT(metric(m.body, "streamtally_collector_store_size_bytes"), testing_clickhouse() ? 20'000 : 100'000);
  EXPECT_NE(m.body.find("streamtally_collector_request_duration_seconds_bucket{endpoint=\"events\",le=\"+Inf\"}"),
            std::string::npos);
  EXPECT_NE(m.body.find("streamtally_collector_ingest_commit_seconds_count"), std::string::npos);
  const json health = collector_->get_json("/healthz");
  EXPECT_EQ(health.at("status"), "ok");
  EXPECT_EQ(health.at("sessions").get<std::size_t>(), sessions_->size());
}

std::vector<std::string> ReportAccuracy::all_queries() {
  std::vector<std::string> q;
  const std::string everything = "&from=" + std::to_string(ranges()[0].from) + "&to=" + std::to_string(ranges()[0].to);
  const std::string busy = "&from=" + std::to_string(ranges()[1].from) + "&to=" + std::to_string(ranges()[1].to);
  for (const std::string& range : {everything, busy}) {
    q.push_back("/v1/events?dimensions=stream,type,country,browser&metrics=sessions,views,viewtime,bytes_out,bytes_in,ccu" + range);
    q.push_back("/v1/events?dimensions=user_id,tag.event&metrics=unique_viewers,max_ccu,sessions,bytes_out,viewtime" + range);
    q.push_back("/v1/timeseries?dimensions=stream&metrics=sessions,views,bytes_out,bytes_in,viewtime&bucket=1h" + range);
    q.push_back("/v1/timeseries?metrics=ccu,unique_viewers,bytes_out&bucket=5m" + busy);
    q.push_back("/v1/sessions?limit=10000" + range);
    for (const char* g : {"stream", "server", "user", "unique"})
      q.push_back(std::string("/v1/sessions?limit=10000&group=") + g + range);
  }
  q.push_back("/v1/timeseries?dimensions=type&metrics=sessions,bytes_out,viewtime&bucket=1d" + everything);
  for (const char* month : {"2026-10", "2026-11"})
    for (const char* by : {"viewtime", "bytes_out"})
      for (const char* of : {"stream", "server"})
        q.push_back(std::string("/v1/top?by=") + by + "&of=" + of + "&month=" + month);
  q.push_back("/v1/usage/month-to-date?at=2026-11-05T12:34:56Z");
  q.push_back("/v1/export?format=csv" + busy);
  return q;
}

TEST_F(ReportAccuracy, ShuffledRetriedDeliveryGivesIdenticalAnswers) {
  // Every update shuffled (a session's updates arrive in any order), batches of 37,
  // every batch sent twice with the same key, and every fifth once more under a new key.
  std::vector<std::string> lines;
  for (const auto& b : batches_) lines.insert(lines.end(), b.begin(), b.end());
  std::mt19937 rng(99);
  std::shuffle(lines.begin(), lines.end(), rng);
  CollectorProcess other(dir_->file("b.db"));
  ASSERT_TRUE(other.started()) << read_file(other.log_path());
  int64_t accepted = 0, duplicates = 0;
  for (std::size_t i = 0, n = 0; i < lines.size(); i += 37, ++n) {
    std::vector<std::string> batch(lines.begin() + static_cast<std::ptrdiff_t>(i),
                                   lines.begin() + static_cast<std::ptrdiff_t>(std::min(lines.size(), i + 37)));
    for (int attempt = 0; attempt < 2; ++attempt) {
      const HttpResponse r = other.post_lines(batch, "shuffled-" + std::to_string(n));
      ASSERT_EQ(r.status, 200) << r.body;
      if (attempt == 0) accepted += json::parse(r.body).at("accepted").get<int64_t>();
    }
    if (n % 5 == 0) {
      const HttpResponse r = other.post_lines(batch, "shuffled-again-" + std::to_string(n));
      ASSERT_EQ(r.status, 200) << r.body;
      duplicates += json::parse(r.body).at("duplicates").get<int64_t>();
      EXPECT_EQ(json::parse(r.body).at("accepted"), 0);
    }
  }
  EXPECT_EQ(accepted, total_updates_);
  EXPECT_GT(duplicates, 0);
  for (const std::string& query : all_queries()) {
    const HttpResponse a = collector_->get(query), b = other.get(query);
    ASSERT_EQ(a.status, 200) << query << " " << a.body;
    EXPECT_EQ(a.body, b.body) << query;
  }
}

TEST_F(ReportAccuracy, ClickHouseAndSqliteGiveIdenticalAnswers) {
  if (!testing_clickhouse()) GTEST_SKIP() << "compares the ClickHouse store with SQLite: see clickhouse.ReportAccuracy.*";
  CollectorProcess sqlite("sqlite:" + dir_->file("reference.db"));
  ASSERT_TRUE(sqlite.started()) << read_file(sqlite.log_path());
  for (std::size_t b = 0; b < batches_.size(); ++b)
    ASSERT_EQ(sqlite.post_lines(batches_[b], "batch-" + std::to_string(b)).status, 200);
  for (const std::string& query : all_queries()) {
    const HttpResponse a = collector_->get(query), b = sqlite.get(query);
    ASSERT_EQ(a.status, 200) << query << " " << a.body;
    EXPECT_EQ(a.body, b.body) << query;
  }
}

TEST_F(ReportAccuracy, ScanSlicesGiveIdenticalAnswers) {
  // The SQLite store reads a report's sessions in slices of their start times, in
  // parallel, on connections that share one snapshot: one slice, three slices (their
  // bounds fall elsewhere) and the default must give the same bytes.
  if (testing_clickhouse()) GTEST_SKIP() << "slices are the SQLite store's: see ReportAccuracy.*";
  CollectorProcess one("sqlite:" + dir_->file("one-slice.db"), {"--scan-threads", "1"});
  CollectorProcess three("sqlite:" + dir_->file("three-slices.db"), {"--scan-threads", "3"});
  ASSERT_TRUE(one.started()) << read_file(one.log_path());
  ASSERT_TRUE(three.started()) << read_file(three.log_path());
  for (std::size_t b = 0; b < batches_.size(); ++b) {
    ASSERT_EQ(one.post_lines(batches_[b], "batch-" + std::to_string(b)).status, 200);
    ASSERT_EQ(three.post_lines(batches_[b], "batch-" + std::to_string(b)).status, 200);
  }
  for (const std::string& query : all_queries()) {
    const HttpResponse reference = collector_->get(query), a = one.get(query), b = three.get(query);
    ASSERT_EQ(reference.status, 200) << query << " " << reference.body;
    EXPECT_EQ(a.body, reference.body) << query;
    EXPECT_EQ(b.body, reference.body) << query;
  }
}

TEST_F(ReportAccuracy, RestartKeepsDataAndAnswers) {
  std::vector<std::string> before;
  for (const std::string& query : all_queries()) before.push_back(collector_->get(query).body);
  EXPECT_EQ(collector_->stop(), 0);  // SIGTERM: a clean exit
  delete collector_;
  collector_ = new CollectorProcess(dir_->file("a.db"));
  ASSERT_TRUE(collector_->started()) << read_file(collector_->log_path());
  const auto queries = all_queries();
  for (std::size_t i = 0; i < queries.size(); ++i) EXPECT_EQ(collector_->get(queries[i]).body, before[i]) << queries[i];
  // Idempotency-Keys survive the restart too.
  const HttpResponse replay = collector_->post_lines(batches_[0], "batch-0");
  EXPECT_EQ(json::parse(replay.body).value("replayed", false), true) << replay.body;
}

}  // namespace
}  // namespace streamtally::test
