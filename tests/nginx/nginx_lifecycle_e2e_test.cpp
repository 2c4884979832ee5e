// nginx's process life and StreamTally: reload, graceful quit, fast stop and a
// worker killed with SIGKILL. Nothing is lost or counted twice; sessions open at
// shutdown close with "server"; a killed worker's sessions are recovered from the
// spool ("recovered") by its successor.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "nginx_fixture.hpp"

using namespace streamtally;
using namespace streamtally::nginx_test;

namespace {

// HTTP only, two workers, sessions closed 2 s after their last request.
NginxOptions two_hls_workers() {
  NginxOptions o;
  o.rtmp = false;
  o.workers = 2;
  o.session_timeout = "2s";
  return o;
}

void write_segment(const std::string& dir) {
  std::ofstream(dir + "/seg.ts") << std::string(40000, 's');
}

// One viewer's requests; returns curl's total of header + body bytes.
uint64_t fetch(Nginx& nginx, const std::string& token, int n) {
  uint64_t total = 0;
  for (int i = 0; i < n; i++) {
    auto r = curl_get(nginx.http_url("/hls/seg.ts?token=" + token), "viewer/" + token, "");
    EXPECT_EQ(r.status, 200);
    total += r.size_header + r.size_download;
  }
  return total;
}

std::vector<SessionRecord> sessions_with_token(const std::vector<SessionRecord>& all, const std::string& token) {
  std::vector<SessionRecord> out;
  for (const auto& r : all)
    if (r.token == token) out.push_back(r);
  return out;
}

}  // namespace

TEST(NginxLifecycle, ReloadNeitherLosesNorDoubleCounts) {
  Nginx nginx(two_hls_workers());
  write_segment(nginx.hls_dir());
  nginx.start();

  uint64_t truth = fetch(nginx, "steady", 6);
  nginx.reload();
  truth += fetch(nginx, "steady", 6);

  // The old workers close what they own ("server") when they exit; a session the new
  // workers own times out. Which worker owns the viewer after the reload depends on
  // whether the old ones are still draining when the requests come: both are right. The
  // new worker's session may reach the spool a moment after the old one's close, so wait
  // for the whole truth: every session closed and every byte counted (once).
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto steady = sessions_with_token(spool_sessions(nginx.spool_path()), "steady");
        uint64_t counted = 0;
        for (const auto& r : steady) {
          if (r.state != SessionState::Closed) return false;
          counted += r.bytes_out;
        }
        return !steady.empty() && counted >= truth;
      },
      20s))
      << describe(spool_sessions(nginx.spool_path())) << nginx.error_log();
  auto sessions = sessions_with_token(spool_sessions(nginx.spool_path()), "steady");
  uint64_t counted = 0;
  for (const auto& r : sessions) {
    EXPECT_EQ(r.state, SessionState::Closed);
    EXPECT_TRUE(r.end_reason == EndReason::Server || r.end_reason == EndReason::Timeout);
    counted += r.bytes_out;
  }
  EXPECT_LE(sessions.size(), 2u);
  EXPECT_EQ(counted, truth);
  EXPECT_TRUE(nginx.quit().has_value());
}

// Viewers keep fetching from four threads while nginx reloads three times: old
// workers exit while the others still hold hits of the sessions they owned (counted
// in their own tables, published up to 100 ms later). Those hits must land somewhere
// (the viewer's next session, or an entry its next request adopts): per viewer, the
// sessions' bytes add up to what curl received, and nothing is logged as lost.
TEST(NginxLifecycle, HitsOfSessionsWhoseOwnerExitedAreNeitherLostNorDoubled) {
  NginxOptions o = two_hls_workers();
  o.session_timeout = "3s";
  Nginx nginx(o);
  write_segment(nginx.hls_dir());
  nginx.start();

  std::map<std::string, uint64_t> truth;
  std::mutex truth_mutex;
  std::atomic<bool> stop{false};
  std::vector<std::thread> viewers;
  for (int t = 0; t < 4; t++)
    viewers.emplace_back([&, t] {
      for (int i = 0; !stop; i++) {
        const std::string token = "churn" + std::to_string(t * 3 + i % 3);
        const uint64_t got = fetch(nginx, token, 1);
        std::lock_guard lock(truth_mutex);
        truth[token] += got;
      }
    });
  for (int reload = 0; reload < 3; reload++) {
    std::this_thread::sleep_for(700ms);
    nginx.reload();
  }
  std::this_thread::sleep_for(700ms);
  stop = true;
  for (auto& v : viewers) v.join();
  ASSERT_EQ(truth.size(), 12u);

  // Every session closed and every byte counted (once) — wait for the last timeouts.
  auto counted = [&] {
    std::map<std::string, uint64_t> sums;
    for (const auto& r : spool_sessions(nginx.spool_path())) {
      if (r.state != SessionState::Closed) return std::map<std::string, uint64_t>{};
      sums[*r.token] += r.bytes_out;
    }
    return sums;
  };
  ASSERT_TRUE(test::wait_until([&] { return counted() == truth; }, 30s))
      << describe(spool_sessions(nginx.spool_path())) << nginx.error_log();
  EXPECT_EQ(nginx.error_log().find("not accounted"), std::string::npos) << nginx.error_log();
  EXPECT_TRUE(nginx.quit().has_value());
}

TEST(NginxLifecycle, QuitClosesOpenSessionsWithServerAndFlushes) {
  NginxOptions o;
  o.workers = 2;  // both modules loaded: each closes only its own sessions at exit
  o.session_timeout = "10m";  // nothing would close on its own
  Nginx nginx(o);
  write_segment(nginx.hls_dir());
  nginx.start();

  std::map<std::string, uint64_t> truth;
  for (std::string token : {"q1", "q2", "q3"}) truth[token] = fetch(nginx, token, 4);

  const auto t0 = std::chrono::steady_clock::now();
  auto code = nginx.quit(20s);
  ASSERT_TRUE(code.has_value()) << "nginx did not quit";
  EXPECT_EQ(*code, 0);
  // Bounded: the flush at exit is capped (3 s per worker, in parallel).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);

  auto all = spool_sessions(nginx.spool_path());
  ASSERT_EQ(all.size(), 3u);
  for (const auto& r : all) {
    SCOPED_TRACE(*r.token);
    EXPECT_EQ(r.state, SessionState::Closed);
    EXPECT_EQ(r.end_reason, EndReason::Server);
    EXPECT_EQ(r.bytes_out, truth[*r.token]);
  }
}

TEST(NginxLifecycle, StopClosesPlayingRtmpSessionsWithServer) {
  NginxOptions o;
  o.workers = 1;
  Nginx nginx(o);
  nginx.start();

  auto publisher = ffmpeg_publish(nginx.rtmp_url("live1?token=pub"), 60);
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(nginx.hls_dir() + "/live1.m3u8"); }, 15s));
  auto player = ffmpeg_play(nginx.rtmp_url("live1?token=player"), "http://p.example/", "LNX 1,0,0,0", 60);
  // Both sessions open and updated at least once with bytes flowing.
  ASSERT_TRUE(test::wait_until(
      [&] {
        int moving = 0;
        for (const auto& r : spool_sessions(nginx.spool_path())) moving += (r.seq >= 1 && r.bytes_out > 0);
        return moving == 2;
      },
      15s))
      << nginx.error_log();

  auto code = nginx.stop(20s);
  ASSERT_TRUE(code.has_value());
  auto all = spool_sessions(nginx.spool_path());
  ASSERT_EQ(all.size(), 2u);
  for (const auto& r : all) {
    EXPECT_EQ(r.state, SessionState::Closed);
    EXPECT_EQ(r.end_reason, EndReason::Server) << *r.token;
    EXPECT_GT(r.bytes_in, 0u);
    EXPECT_GT(r.bytes_out, 0u);
  }
}

TEST(NginxLifecycle, SessionsOfAKilledWorkerAreRecoveredByItsSuccessor) {
  NginxOptions o;
  o.workers = 1;
  o.session_timeout = "2s";
  Nginx nginx(o);
  write_segment(nginx.hls_dir());
  nginx.start();
  const auto first_worker = nginx.worker_pids();
  ASSERT_EQ(first_worker.size(), 1u);

  auto publisher = ffmpeg_publish(nginx.rtmp_url("doomed?token=pub-doomed"), 60);
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(nginx.hls_dir() + "/doomed.m3u8"); }, 15s));
  const uint64_t before_kill = fetch(nginx, "hls-doomed", 3);
  // Let an interim update of every session reach the spool (interim 1 s).
  ASSERT_TRUE(test::wait_until(
      [&] {
        int updated = 0;
        for (const auto& r : spool_sessions(nginx.spool_path())) updated += r.seq >= 1;
        return updated == 2;
      },
      15s));

  ::kill(first_worker[0], SIGKILL);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto now = nginx.worker_pids();
        return now.size() == 1 && now[0] != first_worker[0];
      },
      10s));
  publisher->stop();

  // The viewer goes on with the new worker: a new session, counted from here.
  const uint64_t after_kill = fetch(nginx, "hls-doomed", 2);

  auto recovered = wait_for_closed(nginx.spool_path(), 2, 20s,
                                   [](const SessionRecord& r) { return r.end_reason == EndReason::Recovered; });
  ASSERT_EQ(recovered.size(), 2u) << nginx.error_log();
  for (const auto& r : recovered) {
    EXPECT_GE(r.seq, 1);
    EXPECT_GT(r.bytes_out, 0u);
    if (r.protocol == Protocol::Hls) {
      EXPECT_LE(r.bytes_out, before_kill);  // from its last saved update
    }
  }

  auto fresh = wait_for_closed(nginx.spool_path(), 1, 20s, [](const SessionRecord& r) {
    return r.token == "hls-doomed" && r.end_reason == EndReason::Timeout;
  });
  ASSERT_EQ(fresh.size(), 1u) << describe(spool_sessions(nginx.spool_path()));
  EXPECT_EQ(fresh[0].bytes_out, after_kill);
  EXPECT_TRUE(nginx.quit().has_value());
}

// Two workers: the killed worker's sessions are recovered from the spool, the
// surviving worker's sessions are untouched (and keep the bytes the killed worker
// served for them), and viewers of the killed worker start new sessions.
TEST(NginxLifecycle, KillingOneOfTwoWorkersSplitsOnlyItsOwnSessions) {
  Nginx nginx(two_hls_workers());
  write_segment(nginx.hls_dir());
  nginx.start();
  const auto workers = nginx.worker_pids();
  ASSERT_EQ(workers.size(), 2u);

  std::map<std::string, uint64_t> before, after;
  for (int v = 0; v < 10; v++) before["k" + std::to_string(v)] = fetch(nginx, "k" + std::to_string(v), 3);
  // every session has an interim update in the spool (interim 1 s)
  ASSERT_TRUE(test::wait_until(
      [&] {
        int updated = 0;
        for (const auto& r : spool_sessions(nginx.spool_path())) updated += r.seq >= 1;
        return updated == 10;
      },
      15s))
      << describe(spool_sessions(nginx.spool_path())) << nginx.error_log();

  ::kill(workers[0], SIGKILL);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto now = nginx.worker_pids();
        return now.size() == 2 && std::find(now.begin(), now.end(), workers[0]) == now.end();
      },
      10s));
  for (auto& [token, bytes] : before) after[token] = fetch(nginx, token, 2);

  // 10 sessions from before the kill, plus a new one per viewer of the killed worker
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto all = spool_sessions(nginx.spool_path());
        int recovered = 0;
        for (const auto& r : all) {
          if (r.state != SessionState::Closed) return false;
          recovered += r.end_reason == EndReason::Recovered;
        }
        return all.size() == 10u + static_cast<std::size_t>(recovered);
      },
      20s))
      << describe(spool_sessions(nginx.spool_path()));

  int split = 0;
  for (auto& [token, bytes] : before) {
    SCOPED_TRACE(token);
    auto sessions = sessions_with_token(spool_sessions(nginx.spool_path()), token);
    ASSERT_FALSE(sessions.empty());
    if (sessions.size() == 1) {  // owned by the survivor: all bytes, whoever served them
      EXPECT_EQ(sessions[0].end_reason, EndReason::Timeout);
      EXPECT_EQ(sessions[0].bytes_out, before[token] + after[token]);
      continue;
    }
    ASSERT_EQ(sessions.size(), 2u) << describe(sessions);
    split++;
    const auto& old_one = sessions[0].end_reason == EndReason::Recovered ? sessions[0] : sessions[1];
    const auto& new_one = sessions[0].end_reason == EndReason::Recovered ? sessions[1] : sessions[0];
    EXPECT_EQ(old_one.end_reason, EndReason::Recovered);
    EXPECT_LE(old_one.bytes_out, before[token]);  // its last saved update
    EXPECT_EQ(new_one.end_reason, EndReason::Timeout);
    EXPECT_EQ(new_one.bytes_out, after[token]);   // nothing of the dead worker's counted twice
  }
  EXPECT_GT(split, 0) << "no session was owned by the killed worker (10 viewers spread by reuseport)";
  EXPECT_TRUE(nginx.quit().has_value());
}
