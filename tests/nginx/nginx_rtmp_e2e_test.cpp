// RTMP sessions end to end: Debian's nginx + nginx-rtmp + our module, an ffmpeg
// publisher with a token and two ffmpeg players with their own pageUrl, flashVer,
// token and user id. Ground truth: nginx-rtmp's
// own access log, written by code that is not ours.
#include <gtest/gtest.h>

#include <filesystem>

#include "nginx_fixture.hpp"

using namespace streamtally;
using namespace streamtally::nginx_test;

namespace {

// The C0+C1+C2 / S0+S1+S2 handshake nginx-rtmp's counters leave out; ours include it.
constexpr uint64_t kHandshake = 1 + 1536 + 1536;
// Ours close at the stream's first close_stream; nginx-rtmp logs when the TCP
// connection is gone, after the last status messages. Ours may lack those.
constexpr uint64_t kCloseSlack = 1024;

std::string arg_of(const std::string& args, const std::string& name) {
  const std::string key = name + "=";
  for (std::size_t at = 0; at < args.size();) {
    std::size_t end = args.find('&', at);
    if (end == std::string::npos) end = args.size();
    if (args.compare(at, key.size(), key) == 0) return args.substr(at + key.size(), end - at - key.size());
    at = end + 1;
  }
  return "";
}

}  // namespace

TEST(NginxRtmp, PublishAndPlaySessionsMatchNginxRtmpsAccessLog) {
  NginxOptions o;
  o.workers = 1;
  o.rtmp_app = "streamtally_tag region eu-west; streamtally_tag edge test-1; streamtally_user_arg uid;";
  Nginx nginx(o);
  nginx.start();

  auto publisher = ffmpeg_publish(nginx.rtmp_url("cam?token=pub-secret&uid=studio-1"), 7,
                                  nginx.dir().string() + "/publish.log");
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(nginx.hls_dir() + "/cam.m3u8"); }, 15s))
      << test::read_file(nginx.dir().string() + "/publish.log") << nginx.error_log();

  auto alice = ffmpeg_play(nginx.rtmp_url("cam?token=tok-alice&uid=alice"), "http://site-a.example/watch?v=1",
                           "LNX 9,0,124,2", 3, nginx.dir().string() + "/alice.log");
  auto bob = ffmpeg_play(nginx.rtmp_url("cam?token=tok-bob&uid=bob"), "https://site-b.example/live",
                         "MAC 10,0,32,18", 2);
  ASSERT_TRUE(alice->wait(20s)) << test::read_file(nginx.dir().string() + "/alice.log") << nginx.error_log();
  ASSERT_TRUE(bob->wait(20s));
  ASSERT_TRUE(publisher->wait(20s));

  ASSERT_TRUE(test::wait_until([&] { return nginx.rtmp_access_log().size() >= 3; }, 10s)) << nginx.error_log();
  auto closed = wait_for_closed(nginx.spool_path(), 3, 15s);
  ASSERT_EQ(closed.size(), 3u) << nginx.error_log();

  // Exactly these three sessions, all closed: the second close_stream of each
  // stream closed nothing more.
  auto all = spool_sessions(nginx.spool_path());
  EXPECT_EQ(all.size(), 3u);

  auto log = nginx.rtmp_access_log();
  ASSERT_EQ(log.size(), 3u);
  for (const auto& line : log) {
    SCOPED_TRACE(line.command + " " + line.args);
    const std::string token = arg_of(line.args, "token");
    const SessionRecord* rec = nullptr;
    for (const auto& r : closed)
      if (r.token == token) rec = &r;
    ASSERT_NE(rec, nullptr);
    EXPECT_EQ(rec->type, line.command == "PUBLISH" ? SessionType::Publish : SessionType::Play);
    EXPECT_EQ(rec->protocol, Protocol::Rtmp);
    EXPECT_EQ(rec->stream, line.app + "/" + line.name);
    EXPECT_EQ(rec->client_ip, "127.0.0.1");
    EXPECT_EQ(rec->user_agent, line.flashver);
    EXPECT_EQ(rec->referer, line.pageurl);
    EXPECT_EQ(rec->user_id, arg_of(line.args, "uid"));
    EXPECT_EQ(rec->end_reason, EndReason::Client);
    EXPECT_EQ(rec->tags, (std::map<std::string, std::string>{{"region", "eu-west"}, {"edge", "test-1"}}));
    ASSERT_TRUE(rec->ended_at.has_value());
    EXPECT_GE(*rec->ended_at, rec->started_at);

    EXPECT_LE(rec->bytes_in, line.bytes_received + kHandshake);
    EXPECT_GE(rec->bytes_in + kCloseSlack, line.bytes_received + kHandshake);
    EXPECT_LE(rec->bytes_out, line.bytes_sent + kHandshake);
    EXPECT_GE(rec->bytes_out + kCloseSlack, line.bytes_sent + kHandshake);
  }

  // The publisher ran ~7 s with a 1 s interim: it was updated on the way.
  for (const auto& r : closed) {
    if (r.type == SessionType::Publish) {
      EXPECT_GE(r.seq, 3);
    }
  }

  EXPECT_TRUE(nginx.quit().has_value());
}
