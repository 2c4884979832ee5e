// The uploader as hosts use it: through the C API (libstreamtally.so), whose context
// nudges the uploader after spool appends, drains it on flush and stops it on destroy.
#include <gtest/gtest.h>

#include <map>

#include "streamtally.h"
#include "test_receiver.hpp"
#include "test_support.hpp"

namespace streamtally::test {
namespace {

using namespace std::chrono_literals;

streamtally_str_t str(const char* s) { return {s, 0}; }

struct Opened {
  streamtally_session_t* session = nullptr;
  uint64_t bytes_out = 0;
};

class HostUploadTest : public ::testing::Test {
 protected:
  streamtally_ctx_t* create(const std::string& collector_url) {
    spool_ = dir_.file("host.spool");
    url_ = collector_url;
    streamtally_config_t config{};
    config.spool_path = spool_.c_str();
    config.collector_url = url_.c_str();
    config.collector_token = "host-token";
    config.server_id = "edge-host-test";
    config.batch_size = 8;
    config.flush_ms = 60000;  // only full batches, flush() and destroy send the rest
    streamtally_ctx_t* ctx = nullptr;
    EXPECT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_OK);
    return ctx;
  }

  std::vector<Opened> open_sessions(streamtally_ctx_t* ctx, int n) {
    std::vector<Opened> out;
    for (int i = 0; i < n; ++i) {
      streamtally_session_info_t info{};
      info.type = STREAMTALLY_PLAY;
      info.protocol = STREAMTALLY_PROTO_HLS;
      info.stream = str("live/host-test");
      info.client_ip = str("198.51.100.9");
      info.user_agent = str("AppleCoreMedia/1.0");
      Opened o;
      EXPECT_EQ(streamtally_session_open(ctx, &info, &o.session), STREAMTALLY_OK);
      o.bytes_out = 1000u * static_cast<uint64_t>(i + 1) + 7;
      streamtally_session_add_bytes(o.session, 0, o.bytes_out);
      out.push_back(o);
    }
    return out;
  }

  // The latest record per session that the collector acknowledged.
  static std::map<std::string, SessionRecord> latest(const TestReceiver& receiver) {
    std::map<std::string, SessionRecord> out;
    for (const auto& request : receiver.requests())
      if (request.answered_status == 200)
        for (const auto& r : request.records)
          if (!out.count(r.session_id) || out[r.session_id].seq < r.seq) out[r.session_id] = r;
    return out;
  }

  TempDir dir_;
  std::string spool_, url_;
};

TEST_F(HostUploadTest, FlushDeliversWhatTheHostTrackedAndDestroyShipsTheCloses) {
  TestReceiver receiver;
  streamtally_ctx_t* ctx = create(receiver.url());
  ASSERT_NE(ctx, nullptr);
  auto sessions = open_sessions(ctx, 20);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(streamtally_session_close(sessions[i].session, STREAMTALLY_END_CLIENT), STREAMTALLY_OK);
  ASSERT_EQ(streamtally_ctx_flush(ctx, 20000), STREAMTALLY_OK);

  auto seen = latest(receiver);
  ASSERT_EQ(seen.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    const auto& r = seen.at(streamtally_session_id(sessions[i].session));
    EXPECT_EQ(r.server_id, "edge-host-test");
    EXPECT_EQ(r.state, i < 10 ? SessionState::Closed : SessionState::Open);
    if (i < 10) {
      EXPECT_EQ(r.end_reason, EndReason::Client);
      EXPECT_EQ(r.bytes_out, sessions[i].bytes_out);
    }
  }
  for (const auto& request : receiver.requests()) EXPECT_EQ(request.authorization, "Bearer host-token");

  streamtally_stats_t stats{};
  ASSERT_EQ(streamtally_ctx_stats(ctx, &stats), STREAMTALLY_OK);
  EXPECT_EQ(stats.backlog_records, 0u);
  EXPECT_EQ(stats.oldest_pending_age_ms, -1);
  EXPECT_GE(stats.batches_acked, 3u);  // 30 records, batches of 8
  uint64_t received = 0, wire = 0;
  for (const auto& request : receiver.requests()) {
    received += request.records.size();
    wire += request.wire_bytes;
  }
  EXPECT_EQ(stats.records_uploaded, received);
  EXPECT_EQ(stats.bytes_uploaded, wire);

  std::vector<std::string> ids;
  for (auto& s : sessions) ids.push_back(streamtally_session_id(s.session));
  for (auto& s : sessions) streamtally_session_free(s.session);  // open ones close with "server"
  streamtally_ctx_destroy(ctx, 10000);
  seen = latest(receiver);
  for (int i = 10; i < 20; ++i) {
    const auto& r = seen.at(ids[i]);
    EXPECT_EQ(r.state, SessionState::Closed) << "destroy uploads the final records";
    EXPECT_EQ(r.end_reason, EndReason::Server);
    EXPECT_EQ(r.bytes_out, sessions[i].bytes_out);
  }
}

TEST_F(HostUploadTest, ACollectorThatIsDownNeitherBlocksTheHostNorLosesRecords) {
  const int port = free_port();  // nobody listens
  streamtally_ctx_t* ctx = create("http://127.0.0.1:" + std::to_string(port));
  ASSERT_NE(ctx, nullptr);
  auto sessions = open_sessions(ctx, 12);
  EXPECT_EQ(streamtally_ctx_flush(ctx, 1000), STREAMTALLY_ETIMEDOUT);
  for (auto& s : sessions) streamtally_session_free(s.session);
  const auto before = std::chrono::steady_clock::now();
  streamtally_ctx_destroy(ctx, 1000);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 6s) << "destroy is bounded by its timeout";

  // Everything is still in the spool; an uploader started later delivers it.
  TestReceiver::Options options;
  options.port = port;
  TestReceiver receiver(options);
  ASSERT_TRUE(receiver.listening());
  auto upload = run_command({STREAMTALLY_SPOOL_CLI, "--spool", spool_, "upload", "--collector", receiver.url(),
                             "--token", "host-token", "--once"},
                            60s);
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  auto seen = latest(receiver);
  ASSERT_EQ(seen.size(), 12u);
  for (const auto& [id, r] : seen) {
    EXPECT_EQ(r.state, SessionState::Closed) << id;
    EXPECT_EQ(r.end_reason, EndReason::Server) << id;
  }
}

}  // namespace
}  // namespace streamtally::test
