// The uploader against the real collector (`streamtally-collector`, SQLite store):
// every record uploaded by `streamtally-spool upload --once` is queryable through
// /v1/sessions, a wrong token is refused without losing anything, and uploading the
// same records again does not count them twice.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "record_factory.hpp"
#include "streamtally/record_codec.hpp"
#include "test_support.hpp"

namespace streamtally::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class CollectorUploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    collector_ = std::make_unique<ChildProcess>(ChildProcess::Options{
        {STREAMTALLY_COLLECTOR, "--listen", "127.0.0.1:" + std::to_string(port_), "--store",
         "sqlite:" + dir_.file("collector.db"), "--ingest-token", "edge-token"},
        {},
        dir_.file("collector.out"),
        dir_.file("collector.err"),
        "",
        ""});
    ASSERT_TRUE(wait_for_port(port_, 20s)) << read_file(dir_.file("collector.err"));
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  CommandResult cli(const std::string& spool, std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), {STREAMTALLY_SPOOL_CLI, "--spool", spool});
    return run_command(args, 90s, stdin_data);
  }

  void import(const std::string& spool, const std::vector<SessionRecord>& records) {
    std::string ndjson;
    for (const auto& r : records) ndjson += encode_record(r) + "\n";
    auto result = cli(spool, {"import"}, ndjson);
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }

  json all_sessions() {
    auto response = http_get(url() + "/v1/sessions?group=all&from=0&to=4102444800000&limit=10000");
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body, nullptr, false);
  }

  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> collector_;
};

TEST_F(CollectorUploadTest, EveryRecordArrivesOnceEvenWhenUploadedTwice) {
  const auto records = varied_records(1500);
  const std::string spool = dir_.file("edge.spool");
  import(spool, records);

  // A wrong token: refused (401), nothing lost, exit 4 after the short deadline.
  auto refused = cli(spool, {"upload", "--collector", url(), "--token", "wrong", "--once", "--once-timeout", "1s",
                             "--backoff-base", "100ms"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;
  EXPECT_NE(refused.err.find("ingest token"), std::string::npos) << refused.err;

  auto uploaded = cli(spool, {"upload", "--collector", url(), "--token", "edge-token", "--once", "--batch-size", "400"});
  ASSERT_EQ(uploaded.exit_code, 0) << uploaded.err << read_file(dir_.file("collector.err"));
  EXPECT_EQ(json::parse(uploaded.out)["records_uploaded"], records.size());

  json sessions = all_sessions();
  ASSERT_FALSE(sessions.is_discarded());
  EXPECT_EQ(sessions["total"], records.size());
  std::map<std::string, const SessionRecord*> by_id;
  for (const auto& r : records) by_id[r.session_id] = &r;
  std::size_t matched = 0;
  for (const auto& row : sessions["rows"]) {
    ASSERT_TRUE(row.contains("session_id")) << row.dump();
    auto it = by_id.find(row["session_id"].get<std::string>());
    ASSERT_NE(it, by_id.end()) << row.dump();
    EXPECT_EQ(row.value("bytes_out", uint64_t{0}), it->second->bytes_out) << row.dump();
    EXPECT_EQ(row.value("stream", std::string()), it->second->stream) << row.dump();
    ++matched;
  }
  EXPECT_EQ(matched, records.size());

  // The same records again from another spool (a re-send after a crash, say): the
  // collector keeps one row per (server_id, session_id).
  const std::string again = dir_.file("edge-again.spool");
  import(again, records);
  ASSERT_EQ(cli(again, {"upload", "--collector", url(), "--token", "edge-token", "--once"}).exit_code, 0);
  EXPECT_EQ(all_sessions()["total"], records.size());
}

}  // namespace
}  // namespace streamtally::test
