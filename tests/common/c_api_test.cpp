#include "streamtally.h"

#include <gtest/gtest.h>

#include <map>

#include "streamtally/clock.hpp"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"
#include "test_support.hpp"

using namespace streamtally;
using streamtally::test::TempDir;

namespace {

streamtally_str_t str(const char* s) { return {s, 0}; }

std::map<std::string, SessionRecord> latest_in_spool(const std::string& path) {
  auto spool = Spool::open(SpoolOptions{path});
  std::map<std::string, SessionRecord> latest;
  for (const auto& line : *spool.value()->pending_lines()) {
    SessionRecord r = decode_record(line).value();
    if (!latest.count(r.session_id) || latest[r.session_id].seq < r.seq) latest[r.session_id] = r;
  }
  return latest;
}

}  // namespace

TEST(CApi, SessionsReachTheSpoolWithBytesAndReasons) {
  TempDir dir;
  const std::string spool = dir.file("spool.db");
  streamtally_config_t config{};
  config.spool_path = spool.c_str();
  config.server_id = "edge-test";
  config.host = "edge-test.local";
  streamtally_ctx_t* ctx = nullptr;
  ASSERT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_OK);
  EXPECT_STREQ(streamtally_ctx_server_id(ctx), "edge-test");

  streamtally_tag_t tags[] = {{"event", "cup-final"}};
  streamtally_session_info_t info{};
  info.type = STREAMTALLY_PUBLISH;
  info.protocol = STREAMTALLY_PROTO_RTMP;
  info.stream = {"live/cam1?junk", 9};  // explicit length: not NUL-terminated at 9
  info.client_ip = str("192.0.2.1");
  info.user_agent = str("FMLE/3.0 (compatible; FMSc/1.0)");
  info.token = str("secret");
  info.tags = tags;
  info.n_tags = 1;
  streamtally_session_t* publisher = nullptr;
  ASSERT_EQ(streamtally_session_open(ctx, &info, &publisher), STREAMTALLY_OK);
  info.type = STREAMTALLY_PLAY;
  info.token = {nullptr, 0};
  streamtally_session_t* player = nullptr;
  ASSERT_EQ(streamtally_session_open(ctx, &info, &player), STREAMTALLY_OK);

  streamtally_session_add_bytes(publisher, 5'000'000'000ull, 0);
  streamtally_session_add_bytes(player, 0, 700);
  EXPECT_EQ(streamtally_session_close(publisher, STREAMTALLY_END_CLIENT), STREAMTALLY_OK);
  EXPECT_EQ(streamtally_session_close(publisher, STREAMTALLY_END_ERROR), STREAMTALLY_OK);  // idempotent
  streamtally_session_add_bytes(publisher, 1, 1);  // after close: ignored by the records
  const std::string publisher_id = streamtally_session_id(publisher);
  const std::string player_id = streamtally_session_id(player);
  streamtally_session_free(publisher);

  streamtally_stats_t stats{};
  ASSERT_EQ(streamtally_ctx_stats(ctx, &stats), STREAMTALLY_OK);
  EXPECT_EQ(stats.sessions_open, 1u);
  ASSERT_EQ(streamtally_ctx_flush(ctx, 5000), STREAMTALLY_OK);

  auto latest = latest_in_spool(spool);
  ASSERT_EQ(latest.size(), 2u);
  const SessionRecord& pub = latest[publisher_id];
  EXPECT_EQ(pub.state, SessionState::Closed);
  EXPECT_EQ(pub.end_reason, EndReason::Client);
  EXPECT_EQ(pub.bytes_in, 5'000'000'000ull);
  EXPECT_EQ(pub.type, SessionType::Publish);
  EXPECT_EQ(pub.stream, "live/cam1");
  EXPECT_EQ(pub.token, std::optional<std::string>("secret"));
  EXPECT_EQ(pub.tags.at("event"), "cup-final");
  EXPECT_EQ(pub.server_id, "edge-test");
  EXPECT_EQ(pub.host, "edge-test.local");
  EXPECT_EQ(latest[player_id].state, SessionState::Open);
  EXPECT_FALSE(latest[player_id].token.has_value());

  // Destroying the context closes what the host left open, with "server".
  streamtally_ctx_destroy(ctx, 5000);
  streamtally_session_free(player);  // the handle keeps what it needs alive
  latest = latest_in_spool(spool);
  EXPECT_EQ(latest[player_id].state, SessionState::Closed);
  EXPECT_EQ(latest[player_id].end_reason, EndReason::Server);
  EXPECT_EQ(latest[player_id].bytes_out, 700u);
}

TEST(CApi, ContextsOnOneSpoolShareTheTracker) {
  TempDir dir;
  const std::string spool = dir.file("spool.db");
  streamtally_config_t config{};
  config.spool_path = spool.c_str();
  streamtally_ctx_t *a = nullptr, *b = nullptr;
  ASSERT_EQ(streamtally_ctx_create(&config, &a), STREAMTALLY_OK);
  ASSERT_EQ(streamtally_ctx_create(&config, &b), STREAMTALLY_OK);
  EXPECT_STREQ(streamtally_ctx_server_id(a), streamtally_ctx_server_id(b));  // generated, kept in the spool
  streamtally_session_info_t info{};
  info.protocol = STREAMTALLY_PROTO_HLS;
  streamtally_session_t* s = nullptr;
  ASSERT_EQ(streamtally_session_open(a, &info, &s), STREAMTALLY_OK);
  streamtally_stats_t stats{};
  ASSERT_EQ(streamtally_ctx_stats(b, &stats), STREAMTALLY_OK);
  EXPECT_EQ(stats.sessions_open, 1u);
  streamtally_session_free(s);
  streamtally_ctx_destroy(a, 1000);
  streamtally_ctx_destroy(b, 1000);
}

TEST(CApi, RejectsBadArguments) {
  streamtally_ctx_t* ctx = nullptr;
  EXPECT_EQ(streamtally_ctx_create(nullptr, &ctx), STREAMTALLY_EINVAL);
  streamtally_config_t config{};
  EXPECT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_EINVAL);  // no spool path
  config.spool_path = "/proc/no-such-dir/spool.db";
  EXPECT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_ESPOOL);
  EXPECT_EQ(ctx, nullptr);

  TempDir dir;
  const std::string spool = dir.file("spool.db");
  config.spool_path = spool.c_str();
  ASSERT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_OK);
  streamtally_session_info_t info{};
  info.protocol = static_cast<streamtally_protocol_t>(99);
  streamtally_session_t* s = nullptr;
  EXPECT_EQ(streamtally_session_open(ctx, &info, &s), STREAMTALLY_EINVAL);
  info.protocol = STREAMTALLY_PROTO_RTSP;
  ASSERT_EQ(streamtally_session_open(ctx, &info, &s), STREAMTALLY_OK);
  EXPECT_EQ(streamtally_session_close(s, static_cast<streamtally_end_reason_t>(0)), STREAMTALLY_EINVAL);
  EXPECT_EQ(streamtally_session_close(nullptr, STREAMTALLY_END_CLIENT), STREAMTALLY_EINVAL);
  streamtally_session_add_bytes(nullptr, 1, 1);  // harmless
  streamtally_session_free(s);
  streamtally_ctx_destroy(ctx, 1000);
}

TEST(CApi, CloseAtStampsTheEndTheHostSaw) {
  TempDir dir;
  const std::string spool = dir.file("spool.db");
  streamtally_config_t config{};
  config.spool_path = spool.c_str();
  streamtally_ctx_t* ctx = nullptr;
  ASSERT_EQ(streamtally_ctx_create(&config, &ctx), STREAMTALLY_OK);
  streamtally_session_info_t info{};
  info.protocol = STREAMTALLY_PROTO_HLS;
  streamtally_session_t *late = nullptr, *early = nullptr;
  ASSERT_EQ(streamtally_session_open(ctx, &info, &late), STREAMTALLY_OK);
  ASSERT_EQ(streamtally_session_open(ctx, &info, &early), STREAMTALLY_OK);
  const int64_t ended = streamtally::now_ms() + 45'000;
  EXPECT_EQ(streamtally_session_close_at(late, STREAMTALLY_END_TIMEOUT, ended), STREAMTALLY_OK);
  EXPECT_EQ(streamtally_session_close_at(early, STREAMTALLY_END_TIMEOUT, 1), STREAMTALLY_OK);  // before it began
  EXPECT_EQ(streamtally_session_close_at(early, STREAMTALLY_END_TIMEOUT, -1), STREAMTALLY_EINVAL);
  const std::string late_id = streamtally_session_id(late), early_id = streamtally_session_id(early);
  streamtally_session_free(late);
  streamtally_session_free(early);
  ASSERT_EQ(streamtally_ctx_flush(ctx, 5000), STREAMTALLY_OK);
  auto latest = latest_in_spool(spool);
  EXPECT_EQ(latest[late_id].ended_at, std::optional<int64_t>(ended));
  EXPECT_EQ(latest[late_id].end_reason, EndReason::Timeout);
  EXPECT_EQ(latest[early_id].ended_at, std::optional<int64_t>(latest[early_id].started_at));  // clamped
  streamtally_ctx_destroy(ctx, 1000);
}
