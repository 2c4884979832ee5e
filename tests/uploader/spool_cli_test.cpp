// `streamtally-spool` as an operator runs it: real binary, real spool file, a real
// HTTP receiver; crash tests kill the uploading process with SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "record_factory.hpp"
#include "streamtally/record_codec.hpp"
#include "test_receiver.hpp"
#include "test_support.hpp"

namespace streamtally::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string to_ndjson(const std::vector<SessionRecord>& records) {
  std::string out;
  for (const auto& r : records) out += encode_record(r) + "\n";
  return out;
}

std::vector<SessionRecord> from_ndjson(const std::string& text) {
  std::vector<SessionRecord> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto r = decode_record(line);
    EXPECT_TRUE(r.ok()) << r.error() << ": " << line;
    if (r.ok()) out.push_back(std::move(r).value());
  }
  return out;
}

class SpoolCliTest : public ::testing::Test {
 protected:
  CommandResult cli(std::vector<std::string> args, const std::string& stdin_data = "",
                    std::chrono::milliseconds timeout = 60s) {
    args.insert(args.begin(), {STREAMTALLY_SPOOL_CLI, "--spool", spool_path_});
    return run_command(args, timeout, stdin_data);
  }

  json cli_json(std::vector<std::string> args, const std::string& stdin_data = "") {
    auto result = cli(std::move(args), stdin_data);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    auto parsed = json::parse(result.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << result.out;
    return parsed;
  }

  void import(const std::vector<SessionRecord>& records) {
    auto out = cli_json({"import"}, to_ndjson(records));
    EXPECT_EQ(out["imported"], records.size());
  }

  static void expect_each_acknowledged_once(const TestReceiver& receiver, const std::vector<SessionRecord>& records) {
    const auto acked = receiver.acknowledged();
    EXPECT_EQ(acked.size(), records.size());
    std::size_t missing = 0, twice = 0;
    for (const auto& r : records) {
      auto it = acked.find(key_of(r));
      if (it == acked.end()) ++missing;
      else if (it->second != 1) ++twice;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(twice, 0u);
  }

  TempDir dir_;
  std::string spool_path_ = dir_.file("edge.spool");
};

TEST_F(SpoolCliTest, ImportStatsAndExportRoundTrip) {
  const auto records = varied_records(250);
  import(records);
  const json stats = cli_json({"stats"});
  EXPECT_EQ(stats["pending"], 250);
  EXPECT_EQ(stats["dead_letters"], 0);
  EXPECT_EQ(stats["dropped"], 0);
  EXPECT_TRUE(stats["oldest_pending_ms"].is_number_integer());
  EXPECT_GT(stats["bytes"].get<int64_t>(), 0);

  auto exported = cli({"export"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  auto back = from_ndjson(exported.out);
  auto by_key = [](const SessionRecord& a, const SessionRecord& b) { return key_of(a) < key_of(b); };
  auto expected = records;
  std::sort(back.begin(), back.end(), by_key);
  std::sort(expected.begin(), expected.end(), by_key);
  EXPECT_EQ(back, expected);
}

TEST_F(SpoolCliTest, ImportNamesTheBadLineAndImportsNothing) {
  auto text = to_ndjson(varied_records(4));
  text += "\n";  // a blank line is fine
  auto bad = json::parse(encode_record(varied_record(5)));
  bad["state"] = "paused";
  text += bad.dump() + "\n" + to_ndjson(varied_records(3, 10));
  auto result = cli({"import"}, text);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_NE(result.err.find("line 6"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("state"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(spool_path_)) << "nothing imported, no spool created";
}

TEST_F(SpoolCliTest, UsageAndSpoolErrorsHaveTheirExitCodes) {
  EXPECT_EQ(run_command({STREAMTALLY_SPOOL_CLI}, 10s).exit_code, 2);
  EXPECT_EQ(run_command({STREAMTALLY_SPOOL_CLI, "stats"}, 10s).exit_code, 2);  // --spool missing
  EXPECT_EQ(cli({"upload"}).exit_code, 2);                                      // --collector missing
  EXPECT_EQ(cli({"upload", "--collector", "http://127.0.0.1:1", "--flush", "soon"}).exit_code, 2);
  EXPECT_EQ(cli({"upload", "--collector", "collector.example:8088"}).exit_code, 2);  // no scheme
  auto missing = cli({"stats"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no spool"), std::string::npos);
  auto help = run_command({STREAMTALLY_SPOOL_CLI, "upload", "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--once"), std::string::npos);
  EXPECT_NE(help.out.find("--collector"), std::string::npos);
}

TEST_F(SpoolCliTest, UploadOnceDrainsTheSpoolToTheCollector) {
  TestReceiver receiver;
  const auto records = varied_records(700);
  import(records);
  auto result = cli({"upload", "--collector", receiver.url() + "/", "--token", "t0k", "--once", "--batch-size", "100"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto summary = json::parse(result.out);
  EXPECT_EQ(summary["records_uploaded"], 700);
  EXPECT_EQ(summary["batches_acked"], 7);
  EXPECT_EQ(summary["pending"], 0);
  expect_each_acknowledged_once(receiver, records);
  for (const auto& request : receiver.requests()) EXPECT_EQ(request.authorization, "Bearer t0k");
  EXPECT_EQ(cli_json({"stats"})["pending"], 0);
}

TEST_F(SpoolCliTest, UploadOnceGivesUpWithExit4WhenTheCollectorIsDown) {
  import(varied_records(10));
  auto result = cli({"upload", "--collector", "http://127.0.0.1:" + std::to_string(free_port()), "--once",
                     "--once-timeout", "1s", "--backoff-base", "100ms"});
  EXPECT_EQ(result.exit_code, 4) << result.err;
  EXPECT_EQ(cli_json({"stats"})["pending"], 10);
}

TEST_F(SpoolCliTest, UploadRunsUntilSigtermAndPicksUpWhatOthersAppend) {
  TestReceiver receiver;
  import(varied_records(50));
  ChildProcess upload({{STREAMTALLY_SPOOL_CLI, "--spool", spool_path_, "upload", "--collector", receiver.url(),
                        "--flush", "200ms"},
                       {},
                       dir_.file("run.out"),
                       dir_.file("run.err"),
                       "",
                       ""});
  ASSERT_TRUE(wait_until([&] { return receiver.acknowledged().size() == 50; }, 20s));
  // Another process appends (it cannot nudge this uploader): found within a flush interval or so.
  import(varied_records(20, 100));
  ASSERT_TRUE(wait_until([&] { return receiver.acknowledged().size() == 70; }, 20s));
  upload.signal(SIGTERM);
  EXPECT_EQ(upload.wait(10s), 0) << read_file(dir_.file("run.err"));
  auto summary = json::parse(read_file(dir_.file("run.out")), nullptr, false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["records_uploaded"], 70);
  EXPECT_EQ(summary["pending"], 0);
}

TEST_F(SpoolCliTest, UploadGoesThroughTheProxyOfTheEnvironment) {
  TestReceiver proxy;  // answers the absolute-form requests a proxy receives
  const auto records = varied_records(120);
  import(records);
  ChildProcess upload({{STREAMTALLY_SPOOL_CLI, "--spool", spool_path_, "upload", "--collector",
                        "http://collector.invalid:8088", "--once", "--once-timeout", "30s"},
                       {{"http_proxy", proxy.url()}, {"no_proxy", ""}, {"NO_PROXY", ""}},
                       dir_.file("proxy.out"),
                       dir_.file("proxy.err"),
                       "",
                       ""});
  ASSERT_EQ(upload.wait(60s), 0) << read_file(dir_.file("proxy.err"));
  ASSERT_GE(proxy.request_count(), 1u);
  for (const auto& request : proxy.requests())
    EXPECT_EQ(request.target, "http://collector.invalid:8088/v1/batches");
  expect_each_acknowledged_once(proxy, records);
}

TEST_F(SpoolCliTest, DeadLettersListRequeueAndPurge) {
  TestReceiver receiver;
  receiver.script({{400, "", 0ms, R"({"error":"bad record","line":1})"}});
  const auto records = varied_records(150);
  import(records);
  ASSERT_EQ(cli({"upload", "--collector", receiver.url(), "--once", "--batch-size", "100"}).exit_code, 0);
  ASSERT_EQ(receiver.requests().front().answered_status, 400);
  const auto rejected = receiver.requests().front().records;

  auto listed = cli({"dead-letters", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::set<RecordKey> dead;
  std::istringstream in(listed.out);
  for (std::string line; std::getline(in, line);) {
    auto letter = json::parse(line);
    EXPECT_EQ(letter["http_status"], 400);
    EXPECT_EQ(letter["batch_id"], receiver.requests().front().idempotency_key);
    auto record = decode_record(letter["record"].dump());
    ASSERT_TRUE(record.ok()) << record.error();
    dead.insert(key_of(*record));
  }
  std::set<RecordKey> expected;
  for (const auto& r : rejected) expected.insert(key_of(r));
  EXPECT_EQ(dead, expected);
  EXPECT_EQ(cli_json({"stats"})["dead_letters"], rejected.size());

  EXPECT_EQ(cli_json({"dead-letters", "requeue"})["requeued"], rejected.size());
  ASSERT_EQ(cli({"upload", "--collector", receiver.url(), "--once"}).exit_code, 0);
  expect_each_acknowledged_once(receiver, records);

  // Another rejected batch, purged this time.
  receiver.script({{400, "", 0ms, ""}});
  import(varied_records(5, 1000));
  ASSERT_EQ(cli({"upload", "--collector", receiver.url(), "--once"}).exit_code, 0);
  EXPECT_EQ(cli_json({"dead-letters", "purge"})["purged"], 5);
  auto empty = cli({"dead-letters", "list"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_EQ(empty.out, "");
}

TEST_F(SpoolCliTest, RecoverClosesTheSessionsOfADeadWriter) {
  auto writer = run_command({STREAMTALLY_DYING_WRITER, spool_path_, "6"}, 30s);
  ASSERT_EQ(writer.exit_code, 128 + SIGKILL) << writer.err;
  ASSERT_EQ(writer.out, "6\n");
  EXPECT_EQ(cli_json({"stats"})["open_sessions"], 6);

  EXPECT_EQ(cli_json({"recover"})["recovered"], 6);
  auto exported = cli({"export"});
  ASSERT_EQ(exported.exit_code, 0);
  std::map<std::string, SessionRecord> last;  // per session: the highest seq
  for (auto& r : from_ndjson(exported.out))
    if (!last.count(r.session_id) || last[r.session_id].seq < r.seq) last[r.session_id] = r;
  ASSERT_EQ(last.size(), 6u);
  for (const auto& [id, r] : last) {
    EXPECT_EQ(r.state, SessionState::Closed) << id;
    EXPECT_EQ(r.end_reason, EndReason::Recovered) << id;
    EXPECT_TRUE(r.ended_at.has_value());
  }
  EXPECT_EQ(cli_json({"stats"})["open_sessions"], 0);
  EXPECT_EQ(cli_json({"recover"})["recovered"], 0) << "recovery happens once";
}

TEST_F(SpoolCliTest, KilledMidPostTheBatchIsSentAgainAfterRestart) {
  TestReceiver receiver;
  // The first request is held (and would fail): the uploader is killed meanwhile.
  receiver.script({{503, "", 30s, ""}});
  const auto records = varied_records(300);
  import(records);
  {
    ChildProcess uploader({{STREAMTALLY_SPOOL_CLI, "--spool", spool_path_, "upload", "--collector", receiver.url(),
                            "--batch-size", "100", "--request-timeout", "2s", "--connect-timeout", "1s", "--lease",
                            "5s"},
                           {}, dir_.file("up1.out"), dir_.file("up1.err"), "", ""});
    ASSERT_TRUE(wait_until([&] { return receiver.in_flight() == 1; }, 20s));
    uploader.signal(SIGKILL);
    EXPECT_EQ(uploader.wait(10s), 128 + SIGKILL);
  }
  receiver.release_held();
  ASSERT_TRUE(wait_until([&] { return receiver.in_flight() == 0; }, 10s));
  const auto killed = receiver.requests().front();
  ASSERT_EQ(killed.records.size(), 100u);
  EXPECT_EQ(cli_json({"stats"})["pending"], 300) << "nothing lost";

  auto restart = cli({"upload", "--collector", receiver.url(), "--once", "--batch-size", "100", "--once-timeout",
                      "60s"});
  ASSERT_EQ(restart.exit_code, 0) << restart.err;
  expect_each_acknowledged_once(receiver, records);
  // The killed batch's records reached the collector in a later request.
  const auto acked = receiver.acknowledged();
  for (const auto& r : killed.records) EXPECT_EQ(acked.count(key_of(r)), 1u);
  EXPECT_EQ(cli_json({"stats"})["pending"], 0);
}

TEST_F(SpoolCliTest, SeveralProcessesUploadFromOneSpoolWithoutSharingABatch) {
  TestReceiver::Options options;
  options.hold = 3ms;  // widens the window in which two uploads would overlap
  TestReceiver receiver(options);
  const auto records = varied_records(6000);
  import(records);
  std::vector<ChildProcess> uploaders;
  for (int i = 0; i < 3; ++i)
    uploaders.emplace_back(ChildProcess::Options{
        {STREAMTALLY_SPOOL_CLI, "--spool", spool_path_, "upload", "--collector", receiver.url(), "--once",
         "--batch-size", "50"},
        {},
        dir_.file("up" + std::to_string(i) + ".out"),
        dir_.file("up" + std::to_string(i) + ".err"),
        "",
        ""});
  uint64_t acked_batches = 0;
  for (std::size_t i = 0; i < uploaders.size(); ++i) {
    ASSERT_EQ(uploaders[i].wait(120s), 0) << read_file(dir_.file("up" + std::to_string(i) + ".err"));
    auto summary = json::parse(read_file(dir_.file("up" + std::to_string(i) + ".out")));
    acked_batches += summary["batches_acked"].get<uint64_t>();
  }
  expect_each_acknowledged_once(receiver, records);
  EXPECT_EQ(receiver.concurrent_duplicates(), 0u) << "a record was in two batches in flight at once";
  std::set<int> connections;
  std::size_t answered_200 = 0;
  for (const auto& request : receiver.requests()) {
    connections.insert(request.remote_port);
    answered_200 += request.answered_status == 200;
  }
  EXPECT_GE(connections.size(), 2u) << "more than one process uploaded";
  EXPECT_EQ(acked_batches, answered_200);
  EXPECT_EQ(cli_json({"stats"})["pending"], 0);
}

}  // namespace
}  // namespace streamtally::test
