#include "streamtally/session_tracker.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace streamtally;

namespace {

struct Recorder {
  std::mutex m;
  std::vector<SessionRecord> records;
  SessionTracker::Sink sink() {
    return [this](SessionRecord&& r) {
      std::lock_guard lock(m);
      records.push_back(std::move(r));
    };
  }
};

SessionInfo viewer() {
  SessionInfo info;
  info.type = SessionType::Play;
  info.protocol = Protocol::Rtmp;
  info.stream = "live/news";
  info.client_ip = "198.51.100.3";
  info.user_agent = "LNX 9,0,124,2";
  info.token = "t1";
  return info;
}

}  // namespace

TEST(SessionTracker, OpenEmitsSeqZeroWithIdentity) {
  Recorder rec;
  SessionTracker tracker({"srv", "host-a", std::chrono::milliseconds(60000)}, rec.sink());
  auto s = tracker.open(viewer());
  ASSERT_EQ(rec.records.size(), 1u);
  const SessionRecord& r = rec.records[0];
  EXPECT_EQ(r.seq, 0);
  EXPECT_EQ(r.state, SessionState::Open);
  EXPECT_EQ(r.server_id, "srv");
  EXPECT_EQ(r.host, "host-a");
  EXPECT_EQ(r.session_id, s->id());
  EXPECT_EQ(r.session_id.size(), 36u);
  EXPECT_EQ(r.stream, "live/news");
  EXPECT_EQ(r.token, std::optional<std::string>("t1"));
  EXPECT_FALSE(r.user_id.has_value());
  EXPECT_EQ(tracker.open_count(), 1u);
}

TEST(SessionTracker, InterimUpdatesCarryCumulativeBytesAndIncreasingSeq) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(1000)}, rec.sink());
  auto s = tracker.open(viewer());
  const int64_t t0 = rec.records[0].updated_at;
  s->add_bytes(10, 1000);
  tracker.emit_due_interims(t0 + 500);  // not due yet
  EXPECT_EQ(rec.records.size(), 1u);
  tracker.emit_due_interims(t0 + 1000);
  s->add_bytes(5, 500);
  tracker.emit_due_interims(t0 + 2000);
  ASSERT_EQ(rec.records.size(), 3u);
  EXPECT_EQ(rec.records[1].seq, 1);
  EXPECT_EQ(rec.records[1].bytes_out, 1000u);
  EXPECT_EQ(rec.records[1].updated_at, t0 + 1000);
  EXPECT_EQ(rec.records[2].seq, 2);
  EXPECT_EQ(rec.records[2].bytes_in, 15u);
  EXPECT_EQ(rec.records[2].bytes_out, 1500u);
}

TEST(SessionTracker, CloseIsIdempotent) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(60000)}, rec.sink());
  auto s = tracker.open(viewer());
  s->add_bytes(0, 4'500'000'000ull);  // beyond 32 bits
  EXPECT_TRUE(tracker.close(s, EndReason::Client));
  EXPECT_FALSE(tracker.close(s, EndReason::Server));  // nginx-rtmp's second close_stream
  ASSERT_EQ(rec.records.size(), 2u);
  const SessionRecord& last = rec.records[1];
  EXPECT_EQ(last.state, SessionState::Closed);
  EXPECT_EQ(last.end_reason, EndReason::Client);
  EXPECT_EQ(last.bytes_out, 4'500'000'000ull);
  ASSERT_TRUE(last.ended_at);
  EXPECT_EQ(*last.ended_at, last.updated_at);
  EXPECT_EQ(tracker.open_count(), 0u);
  tracker.emit_due_interims(INT64_MAX);  // a closed session gets no more updates
  EXPECT_EQ(rec.records.size(), 2u);
}

TEST(SessionTracker, SetTotalsNeverGoesBackwards) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(60000)}, rec.sink());
  auto s = tracker.open(viewer());
  s->set_totals(100, 200);
  s->set_totals(50, 300);
  EXPECT_EQ(s->bytes_in(), 100u);
  EXPECT_EQ(s->bytes_out(), 300u);
}

TEST(SessionTracker, ConcurrentByteCountingLosesNothing) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(1)}, rec.sink());
  auto s = tracker.open(viewer());
  std::atomic<bool> done{false};
  std::thread ticker([&] {
    int64_t t = 0;
    while (!done) tracker.emit_due_interims(t += 10);
  });
  std::vector<std::thread> counters;
  for (int t = 0; t < 4; ++t)
    counters.emplace_back([&] {
      for (int i = 0; i < 250000; ++i) s->add_bytes(1, 2);
    });
  for (auto& t : counters) t.join();
  done = true;
  ticker.join();
  tracker.close(s, EndReason::Client);
  EXPECT_EQ(rec.records.back().bytes_in, 1'000'000u);
  EXPECT_EQ(rec.records.back().bytes_out, 2'000'000u);
  for (std::size_t i = 1; i < rec.records.size(); ++i) {
    EXPECT_EQ(rec.records[i].seq, rec.records[i - 1].seq + 1);
    EXPECT_GE(rec.records[i].bytes_out, rec.records[i - 1].bytes_out);
  }
}

TEST(SessionTracker, CloseAllClosesEverySessionOnce) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(60000)}, rec.sink());
  for (int i = 0; i < 5; ++i) tracker.open(viewer());
  tracker.close_all(EndReason::Server);
  int closed = 0;
  for (auto& r : rec.records) closed += r.state == SessionState::Closed && r.end_reason == EndReason::Server;
  EXPECT_EQ(closed, 5);
  EXPECT_EQ(tracker.open_count(), 0u);
}

// Updates due within a tenth of the interval go out together, and the tracker says
// when it next has work: the spool writer sleeps until then and appends once.
TEST(SessionTracker, InterimUpdatesDueCloseTogetherGoOutTogether) {
  Recorder rec;
  SessionTracker tracker({"srv", "h", std::chrono::milliseconds(1000)}, rec.sink());
  auto a = tracker.open(viewer());
  const int64_t t0 = rec.records[0].updated_at;
  auto b = tracker.open(viewer());  // due a few ms after a at most
  const int64_t b_due = rec.records[1].updated_at + 1000;
  ASSERT_LT(b_due - t0, 1050);

  EXPECT_EQ(tracker.emit_due_interims(t0 + 850), t0 + 1000) << "nothing due within a tenth yet";
  EXPECT_EQ(rec.records.size(), 2u);
  // 80 ms before a is due: both go, in one batch, and are next due together.
  EXPECT_EQ(tracker.emit_due_interims(t0 + 920), t0 + 1920);
  ASSERT_EQ(rec.records.size(), 4u);
  EXPECT_EQ(rec.records[2].updated_at, t0 + 920);
  EXPECT_EQ(rec.records[3].updated_at, t0 + 920);
  tracker.close(a, EndReason::Client);
  tracker.close(b, EndReason::Client);
  EXPECT_EQ(tracker.emit_due_interims(t0 + 5000), INT64_MAX) << "no session open: nothing due";
}
