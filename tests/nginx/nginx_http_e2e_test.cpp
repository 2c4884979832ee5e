// HTTP playout sessions end to end, with the HTTP module alone (no nginx-rtmp):
// HLS files served by two workers (reuseport spreads a viewer's connections over
// both), curl viewers with their own User-Agent, Referer and token. Ground truth:
// curl's own byte counts and nginx's access log ($bytes_sent, $request_length).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <set>

#include "nginx_fixture.hpp"

using namespace streamtally;
using namespace streamtally::nginx_test;

namespace {

// A playlist and five segments of distinct sizes.
void write_hls_files(const std::string& dir) {
  std::ofstream(dir + "/cam.m3u8") << "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                                      "#EXTINF:1.0,\ncam-0.ts\n#EXTINF:1.0,\ncam-1.ts\n";
  for (int i = 0; i < 5; i++)
    std::ofstream(dir + "/cam-" + std::to_string(i) + ".ts") << std::string(20000 + 3217 * i, static_cast<char>('a' + i));
}

struct Viewer {
  std::string user_agent, referer, token, user;
  uint64_t bytes_out = 0, bytes_in = 0;  // curl's count
  int requests = 0;
  int64_t done_ms = 0;  // wall clock after the last response
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void watch(Nginx& nginx, Viewer& v, int rounds) {
  for (int round = 0; round < rounds; round++) {
    for (std::string path : {"cam.m3u8", "cam-0.ts", "cam-1.ts", "cam-2.ts", "cam-3.ts", "cam-4.ts"}) {
      auto r = curl_get(nginx.http_url("/hls/" + path + "?token=" + v.token + "&user=" + v.user), v.user_agent,
                        v.referer);
      ASSERT_EQ(r.exit_code, 0);
      ASSERT_EQ(r.status, 200);
      v.bytes_out += r.size_header + r.size_download;
      v.bytes_in += r.size_request;
      v.requests++;
    }
  }
  v.done_ms = now_ms();
}

}  // namespace

TEST(NginxHttp, EachViewerIsOneSessionAcrossTwoWorkersWithExactBytes) {
  NginxOptions o;
  o.rtmp = false;
  o.workers = 2;
  o.session_timeout = "2s";
  // No interim update during the idle timeout: the library never dates a close
  // before the session's last emitted update, and ended_at is checked below.
  o.interim = "1h";
  o.http_location = "streamtally_user_id $arg_user; streamtally_tag cdn \"edge-$server_port\";";
  Nginx nginx(o);
  write_hls_files(nginx.hls_dir());
  nginx.start();

  std::vector<Viewer> viewers = {
      {"AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X)", "https://a.example/page", "tok-a", "alice"},
      {"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", "https://b.example/", "tok-b", "bob"},
      {"ExoPlayerLib/2.19.1", "", "tok-c", "carol"},
      // same User-Agent as the first, another token: another session
      {"AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X)", "https://a.example/page", "tok-d", "dave"},
  };
  for (auto& v : viewers) watch(nginx, v, 3);

  // A viewer on one keep-alive connection (one curl, six URLs): nginx's per-request
  // counters restart on every request of the connection.
  Viewer keepalive{"Lavf/59.27.100", "", "tok-keepalive", "erin"};
  {
    std::vector<std::string> argv = {"curl", "-s", "-A", keepalive.user_agent, "-w",
                                     "%{size_header} %{size_download} %{size_request} %{num_connects}\n"};
    for (std::string path : {"cam.m3u8", "cam-0.ts", "cam-1.ts", "cam-2.ts", "cam-3.ts", "cam-4.ts"}) {
      argv.push_back("-o");
      argv.push_back("/dev/null");
      argv.push_back(nginx.http_url("/hls/" + path + "?token=" + keepalive.token + "&user=" + keepalive.user));
    }
    auto r = test::run_command(argv, 20s);
    ASSERT_EQ(r.exit_code, 0);
    std::istringstream lines(r.out);
    uint64_t header = 0, body = 0, request = 0, connects = 0, total_connects = 0;
    while (lines >> header >> body >> request >> connects) {
      keepalive.bytes_out += header + body;
      keepalive.bytes_in += request;
      keepalive.requests++;
      total_connects += connects;
    }
    ASSERT_EQ(keepalive.requests, 6);
    ASSERT_EQ(total_connects, 1u) << "curl was expected to reuse its connection";
    keepalive.done_ms = now_ms();
  }
  viewers.push_back(keepalive);

  // Not accounted: a location without "streamtally on", and a 404 starts no session.
  ASSERT_EQ(curl_get(nginx.http_url("/plain/cam.m3u8?token=tok-plain"), "plain", "").status, 200);
  ASSERT_EQ(curl_get(nginx.http_url("/hls/missing.m3u8?token=tok-404"), "lost", "").status, 404);

  auto closed = wait_for_closed(nginx.spool_path(), viewers.size(), 20s);
  ASSERT_EQ(closed.size(), viewers.size()) << describe(spool_sessions(nginx.spool_path())) << [&] {
    std::string s;
    std::istringstream in(nginx.error_log());
    for (std::string line; std::getline(in, line);)
      if (line.find("streamtally") != std::string::npos) s += line + "\n";
    return s;
  }();
  EXPECT_EQ(spool_sessions(nginx.spool_path()).size(), viewers.size());

  // The viewers' requests really were served by both workers.
  std::map<std::string, std::set<pid_t>> workers_of;
  std::map<std::string, std::pair<uint64_t, uint64_t>> log_bytes;  // token -> (sent, request_length)
  for (const auto& l : nginx.http_access_log()) {
    if (l.uri.rfind("/hls/", 0) != 0 || l.status != 200) continue;
    workers_of[l.token].insert(l.worker);
    log_bytes[l.token].first += l.bytes_sent;
    log_bytes[l.token].second += l.request_length;
  }
  bool some_viewer_on_two_workers = false;
  for (auto& [token, pids] : workers_of) some_viewer_on_two_workers |= pids.size() >= 2;
  EXPECT_TRUE(some_viewer_on_two_workers);

  for (const auto& v : viewers) {
    SCOPED_TRACE(v.token);
    const SessionRecord* rec = nullptr;
    for (const auto& r : closed)
      if (r.token == v.token) rec = &r;
    ASSERT_NE(rec, nullptr);
    EXPECT_EQ(rec->bytes_out, v.bytes_out);  // curl: headers + bodies received
    EXPECT_EQ(rec->bytes_in, v.bytes_in);    // curl: request bytes sent
    EXPECT_EQ(rec->bytes_out, log_bytes[v.token].first);
    EXPECT_EQ(rec->bytes_in, log_bytes[v.token].second);
    EXPECT_EQ(rec->type, SessionType::Play);
    EXPECT_EQ(rec->protocol, Protocol::Hls);
    EXPECT_EQ(rec->stream, "hls/cam");
    EXPECT_EQ(rec->client_ip, "127.0.0.1");
    EXPECT_EQ(rec->user_agent, v.user_agent);
    EXPECT_EQ(rec->referer, v.referer);
    EXPECT_EQ(rec->user_id, v.user);
    EXPECT_EQ(rec->end_reason, EndReason::Timeout);
    // The session ended with its last request, not when the idle timeout noticed it.
    ASSERT_TRUE(rec->ended_at.has_value());
    EXPECT_LE(*rec->ended_at, v.done_ms);
    EXPECT_GE(*rec->ended_at, rec->started_at);
    EXPECT_EQ(rec->tags, (std::map<std::string, std::string>{{"cdn", "edge-" + std::to_string(nginx.http_port())}}));
  }
  EXPECT_TRUE(nginx.quit().has_value());
}

TEST(NginxHttp, AFullZoneEvictsTheLeastRecentSessionsAndClosesThemWithExactTotals) {
  NginxOptions o;
  o.rtmp = false;
  o.workers = 2;
  o.session_timeout = "2s";
  o.http_main = "streamtally_zone 32k;";  // room for a few dozen sessions only
  Nginx nginx(o);
  write_hls_files(nginx.hls_dir());
  nginx.start();

  // 150 one-request viewers, and one viewer who keeps watching all along.
  std::map<std::string, uint64_t> truth_out;
  const std::string hot = "hot-viewer";
  for (int i = 0; i < 150; i++) {
    const std::string ua = "viewer-" + std::to_string(i);
    auto r = test::http_get(nginx.http_url("/hls/cam-" + std::to_string(i % 5) + ".ts"), {{"User-Agent", ua}});
    ASSERT_EQ(r.status, 200);
    if (i % 10 == 0) {
      auto h = test::http_get(nginx.http_url("/hls/cam.m3u8"), {{"User-Agent", hot}});
      ASSERT_EQ(h.status, 200);
    }
  }
  for (const auto& l : nginx.http_access_log()) truth_out[l.user_agent] += l.bytes_sent;
  ASSERT_EQ(truth_out.size(), 151u);

  auto closed = wait_for_closed(nginx.spool_path(), 151, 30s);
  ASSERT_EQ(closed.size(), 151u) << nginx.error_log();
  std::map<std::string, int> sessions_of;
  int evicted = 0;
  for (const auto& r : closed) {
    sessions_of[r.user_agent]++;
    EXPECT_EQ(r.bytes_out, truth_out[r.user_agent]) << r.user_agent;
    if (r.end_reason == EndReason::Server) evicted++;
  }
  EXPECT_EQ(sessions_of.size(), 151u);
  EXPECT_EQ(sessions_of[hot], 1) << "the most recently seen session must not be evicted";
  EXPECT_GT(evicted, 0) << "the zone was expected to fill up";
  EXPECT_EQ(nginx.error_log().find("session table full"), std::string::npos);
  EXPECT_TRUE(nginx.quit().has_value());
}

// Without streamtally_protocol / streamtally_stream, both come from the URI as
// nginx-rtmp names its HLS and DASH files; a session starts with its first request.
TEST(NginxHttp, ProtocolAndStreamComeFromTheUri) {
  NginxOptions o;
  o.rtmp = false;
  o.session_timeout = "1s";
  o.interim = "1h";
  Nginx nginx(o);
  const std::string d = nginx.hls_dir();
  std::filesystem::create_directories(d + "/nested");
  for (std::string f : {"cam.mpd", "cam-init.m4v", "cam-12000.m4v", "movie.mp4", "nested/index.m3u8", "nested/3.ts",
                        "show.flv"})
    std::ofstream(d + "/" + f) << std::string(1000 + f.size(), 'x');
  nginx.start();

  struct Case {
    std::vector<std::string> paths;
    std::string token;
    Protocol protocol;
    std::string stream;
  };
  const std::vector<Case> cases = {
      {{"cam.mpd", "cam-init.m4v", "cam-12000.m4v"}, "dash", Protocol::Dash, "hls/cam"},
      {{"nested/index.m3u8", "nested/3.ts"}, "nested", Protocol::Hls, "hls/nested"},
      {{"movie.mp4"}, "progressive", Protocol::HttpProgressive, "hls/movie"},
      {{"show.flv"}, "flv", Protocol::HttpFlv, "hls/show"},
  };
  for (const auto& c : cases)
    for (const auto& p : c.paths) ASSERT_EQ(curl_get(nginx.http_url("/hls/" + p + "?token=" + c.token), "ua", "").status, 200);

  auto closed = wait_for_closed(nginx.spool_path(), cases.size(), 15s);
  ASSERT_EQ(closed.size(), cases.size()) << describe(spool_sessions(nginx.spool_path()));
  for (const auto& c : cases) {
    SCOPED_TRACE(c.token);
    const SessionRecord* rec = nullptr;
    for (const auto& r : closed)
      if (r.token == c.token) rec = &r;
    ASSERT_NE(rec, nullptr);
    EXPECT_EQ(rec->protocol, c.protocol);
    EXPECT_EQ(rec->stream, c.stream);
  }
  EXPECT_TRUE(nginx.quit().has_value());
}

// Configured values win; a custom session key makes one session of a viewer who
// changes User-Agent (e.g. a player handing over to AirPlay) but keeps its id.
TEST(NginxHttp, ConfiguredProtocolStreamAndSessionKey) {
  NginxOptions o;
  o.rtmp = false;
  o.session_timeout = "1s";
  o.interim = "1h";
  o.http_location = "streamtally_protocol http-flv; streamtally_stream live/$arg_s; streamtally_session_key $arg_sid;";
  Nginx nginx(o);
  std::ofstream(nginx.hls_dir() + "/a.ts") << std::string(5000, 'a');
  nginx.start();

  uint64_t truth = 0;
  for (std::string ua : {"Player/1.0", "AirPlay/2.0", "Player/1.0"}) {
    auto r = curl_get(nginx.http_url("/hls/a.ts?s=arena&sid=viewer-42&token=t42"), ua, "");
    ASSERT_EQ(r.status, 200);
    truth += r.size_header + r.size_download;
  }
  auto closed = wait_for_closed(nginx.spool_path(), 1, 15s);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(spool_sessions(nginx.spool_path()).size(), 1u);
  EXPECT_EQ(closed[0].protocol, Protocol::HttpFlv);
  EXPECT_EQ(closed[0].stream, "live/arena");
  EXPECT_EQ(closed[0].user_agent, "Player/1.0");  // from the first request
  EXPECT_EQ(closed[0].bytes_out, truth);
  EXPECT_TRUE(nginx.quit().has_value());
}
