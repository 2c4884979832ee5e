// The ClickHouse store against a real clickhouse-server on 127.0.0.1: the corner cases
// of byte attribution give SQLite's numbers exactly, and an outage of ClickHouse is a
// 503 the edge retries, with nothing lost once it is back. (The whole report suite
// also runs on ClickHouse: clickhouse.ReportAccuracy.*.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_store.hpp"
#include "collector_process.hpp"
#include "session_dataset.hpp"

namespace streamtally::test {
namespace {

using nlohmann::json;

constexpr int64_t kT0 = 1'764'547'200'000;  // 2025-12-01T00:00:00Z
constexpr int64_t kMinute = 60'000, kDay = 86'400'000;

// Sessions whose chains hit every branch of the attribution: huge byte counts,
// intervals over many buckets, updates out of time order (negative intervals), counters
// that go down, zero-length sessions, and a chain delivered out of seq order.
std::vector<std::vector<std::string>> corner_case_batches() {
  std::vector<RawSession> sessions;
  auto session = [&](const std::string& id, int64_t started_at, const std::vector<RawUpdate>& updates) {
    RawSession s;
    s.server_id = "edge-1", s.host = "edge-1.example", s.session_id = id, s.type = "play", s.protocol = "hls";
    s.stream = "live/" + id, s.client_ip = "192.0.2.1", s.user_agent = "VLC/3.0.18 LibVLC/3.0.18";
    s.started_at = started_at;
    s.updates = updates;
    sessions.push_back(s);
  };
  auto update = [](int64_t seq, int64_t updated_at, int64_t bytes_out, std::optional<int64_t> ended_at = {}) {
    RawUpdate u;
    u.seq = seq, u.updated_at = updated_at, u.ended_at = ended_at, u.bytes_out = bytes_out, u.bytes_in = bytes_out / 7;
    return u;
  };
  session("huge", kT0 + 1'234, {update(0, kT0 + 7 * kMinute + 11, 4'000'000'000'000'000),
                                update(1, kT0 + 9 * kMinute + 5, 9'000'000'000'000'000'000)});
  session("long", kT0 + 59'999, {update(0, kT0 + 3 * 60 * kMinute + 17, 123'456'789'012, kT0 + 3 * 60 * kMinute + 17)});
  session("backwards", kT0 + 5 * kMinute, {update(0, kT0 + 8 * kMinute, 5'000), update(1, kT0 + 6 * kMinute + 30'000, 4'000),
                                           update(2, kT0 + 8 * kMinute + 1, 90'000)});
  session("instant", kT0 + 2 * kMinute, {update(0, kT0 + 2 * kMinute, 777, kT0 + 2 * kMinute)});
  std::vector<std::vector<std::string>> batches;
  for (const RawSession& s : sessions) {
    std::vector<std::string> lines;
    for (std::size_t i = s.updates.size(); i-- > 0;) lines.push_back(record_line(s, i));  // newest first
    batches.push_back(lines);
  }
  return batches;
}

// Every report over these sessions, at bucket sizes that cut their intervals anywhere.
std::vector<std::string> corner_case_queries() {
  const std::string range = "&from=" + std::to_string(kT0 - 60 * kMinute) + "&to=" + std::to_string(kT0 + 5 * 60 * kMinute);
  std::vector<std::string> q;
  for (const char* bucket : {"1m", "5m", "1h"})
    q.push_back(std::string("/v1/timeseries?dimensions=stream&metrics=sessions,views,viewtime,bytes_out,bytes_in,ccu&bucket=") +
                bucket + range);
  q.push_back("/v1/events?dimensions=stream&metrics=sessions,views,viewtime,bytes_out,bytes_in,max_ccu,unique_viewers" + range);
  // Ranges that start and end inside intervals.
  for (int64_t from : {kT0 + 3 * kMinute, kT0 + 7 * kMinute, kT0 + 61 * kMinute})
    q.push_back("/v1/events?metrics=viewtime,bytes_out,bytes_in,sessions&from=" + std::to_string(from) +
                "&to=" + std::to_string(from + 3 * kMinute));
  q.push_back("/v1/sessions?limit=100" + range);
  return q;
}

TEST(ClickHouseStore, AttributionCornerCasesMatchSqlite) {
  ASSERT_TRUE(testing_clickhouse()) << "runs with STREAMTALLY_TEST_STORE=clickhouse (see CMakeLists.txt)";
  TempDir dir;
  CollectorProcess clickhouse(dir.file("corner.db"));
  ASSERT_TRUE(clickhouse.started()) << read_file(clickhouse.log_path());
  CollectorProcess sqlite("sqlite:" + dir.file("corner-reference.db"));
  ASSERT_TRUE(sqlite.started()) << read_file(sqlite.log_path());
  const auto batches = corner_case_batches();
  for (std::size_t b = 0; b < batches.size(); ++b)
    for (const CollectorProcess* c : {&clickhouse, &sqlite}) {
      const HttpResponse r = c->post_lines(batches[b], "corner-" + std::to_string(b));
      ASSERT_EQ(r.status, 200) << r.body;
    }
  const json huge = clickhouse.get_json("/v1/events?metrics=bytes_out&where=stream==live/huge&from=0&to=" +
                                        std::to_string(kT0 + 24 * 60 * kMinute));
  EXPECT_EQ(huge.at("data").at(0).at("totals").at("bytes_out"), 9'000'000'000'000'000'000) << huge.dump();
  for (const std::string& query : corner_case_queries()) {
    const HttpResponse a = clickhouse.get(query), b = sqlite.get(query);
    ASSERT_EQ(a.status, 200) << query << " " << a.body;
    EXPECT_EQ(a.body, b.body) << query;
  }
}

TEST(ClickHouseStore, AnOutageIsA503AndTheRetryLosesNothing) {
  ASSERT_TRUE(testing_clickhouse()) << "runs with STREAMTALLY_TEST_STORE=clickhouse (see CMakeLists.txt)";
  TempDir dir;
  const auto sessions = generate_sessions(21, 40, kT0, 2 * 60 * kMinute);
  std::vector<std::string> first, second;
  for (std::size_t i = 0; i < sessions.size(); ++i)
    for (std::size_t u = 0; u < sessions[i].updates.size(); ++u)
      (i % 2 ? second : first).push_back(record_line(sessions[i], u));
  CollectorProcess collector(dir.file("outage.db"));
  ASSERT_TRUE(collector.started()) << read_file(collector.log_path());
  ASSERT_EQ(collector.post_lines(first, "first").status, 200);

  shared_clickhouse_server().stop();
  const HttpResponse refused = collector.post_lines(second, "second");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("retry later"), std::string::npos) << refused.body;
  const HttpResponse report = collector.get("/v1/events?metrics=sessions&from=0&to=" + std::to_string(kT0 + kDay));
  EXPECT_GE(report.status, 500) << report.body;  // an error, never a wrong answer
  EXPECT_NE(read_file(collector.log_path()).find("clickhouse"), std::string::npos);

  ASSERT_TRUE(shared_clickhouse_server().start()) << shared_clickhouse_server().log();
  const HttpResponse retried = collector.post_lines(second, "second");  // what an edge does
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(json::parse(retried.body).at("accepted").get<std::size_t>(), second.size());
  const json all = collector.get_json("/v1/events?metrics=sessions&from=0&to=" + std::to_string(kT0 + kDay));
  EXPECT_EQ(all.at("data").at(0).at("totals").at("sessions").get<std::size_t>(), sessions.size());
}

}  // namespace
}  // namespace streamtally::test
