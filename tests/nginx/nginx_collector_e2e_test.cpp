// Records reach a real collector (streamtally-collector of this build), also when
// the collector is down while nginx accounts and comes up later: the records wait
// in the spool and the uploader delivers them, once each.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "nginx_fixture.hpp"

using namespace streamtally;
using namespace streamtally::nginx_test;

TEST(NginxCollector, RecordsWaitInTheSpoolForACollectorThatComesUpLater) {
  const std::string collector_bin = STREAMTALLY_COLLECTOR_BIN;
  if (collector_bin.empty() || !std::filesystem::exists(collector_bin))
    GTEST_SKIP() << "streamtally-collector is not built in this tree";

  const int collector_port = test::free_port();
  NginxOptions o;
  o.workers = 1;
  o.collector_url = "http://127.0.0.1:" + std::to_string(collector_port);
  Nginx nginx(o);
  std::ofstream(nginx.hls_dir() + "/seg.ts") << std::string(30000, 'v');
  nginx.start();

  // Accounting while nothing listens on the collector's port.
  auto publisher = ffmpeg_publish(nginx.rtmp_url("late?token=pub-late"), 3);
  std::map<std::string, uint64_t> truth;
  for (std::string token : {"late-1", "late-2"}) {
    for (int i = 0; i < 3; i++) {
      auto r = curl_get(nginx.http_url("/hls/seg.ts?token=" + token), "curl-" + token, "");
      ASSERT_EQ(r.status, 200);
      truth[token] += r.size_header + r.size_download;
    }
  }
  ASSERT_TRUE(publisher->wait(20s));
  auto closed = wait_for_closed(nginx.spool_path(), 3, 20s);
  ASSERT_EQ(closed.size(), 3u) << describe(spool_sessions(nginx.spool_path()));

  test::TempDir collector_dir;
  test::ChildProcess collector({{collector_bin, "--listen", "127.0.0.1:" + std::to_string(collector_port), "--store",
                                 "sqlite:" + collector_dir.file("collector.db"), "--ingest-token", "ingest-secret"},
                                {},
                                collector_dir.file("out.log"),
                                collector_dir.file("err.log"),
                                "",
                                ""});
  ASSERT_TRUE(test::wait_for_port(collector_port, 15s)) << test::read_file(collector_dir.file("err.log"));

  // The uploader backs off while the collector is down (1 s base, exponential):
  // delivery follows within a few of its retries.
  nlohmann::json sessions;
  const std::string url = "http://127.0.0.1:" + std::to_string(collector_port) + "/v1/sessions?group=all&limit=100";
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = test::http_get(url);
        if (r.status != 200) return false;
        sessions = nlohmann::json::parse(r.body, nullptr, false);
        if (!sessions.is_object() || sessions.value("total", 0) < 3) return false;
        for (const auto& row : sessions["rows"])
          if (row.value("state", "") != "closed") return false;
        return true;
      },
      60s, 250ms))
      << sessions.dump() << nginx.error_log();

  EXPECT_EQ(sessions["total"].get<int>(), 3);
  for (const auto& row : sessions["rows"]) {
    const std::string token = row["token"].is_string() ? row["token"].get<std::string>() : "";
    SCOPED_TRACE(token);
    if (token == "pub-late") {
      EXPECT_EQ(row["type"], "publish");
      EXPECT_EQ(row["protocol"], "rtmp");
      EXPECT_EQ(row["stream"], "app/late");
      EXPECT_GT(row["bytes_in"].get<uint64_t>(), 0u);
    } else {
      ASSERT_TRUE(truth.count(token));
      EXPECT_EQ(row["protocol"], "hls");
      EXPECT_EQ(row["bytes_out"].get<uint64_t>(), truth[token]);
      EXPECT_EQ(row["end_reason"], "timeout");
    }
  }
  // Acknowledged records leave the spool.
  EXPECT_TRUE(test::wait_until(
      [&] {
        for (const auto& r : spool_sessions(nginx.spool_path()))
          if (r.state == SessionState::Closed) return false;
        return true;
      },
      10s));
  EXPECT_TRUE(nginx.quit().has_value());
}
