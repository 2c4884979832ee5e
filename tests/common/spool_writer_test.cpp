// SpoolWriter: records reach the spool without a flush, within the batching tick;
// the periodic work runs when on_tick says it is due — not on a fixed tick — so an
// idle writer sleeps.
#include "streamtally/spool_writer.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "streamtally/clock.hpp"
#include "streamtally/spool.hpp"
#include "test_support.hpp"

using namespace streamtally;
using namespace std::chrono_literals;

namespace {

SessionRecord record(const std::string& id) {
  SessionRecord r;
  r.server_id = "srv";
  r.host = "host";
  r.session_id = id;
  r.stream = "live/a";
  r.client_ip = "192.0.2.1";
  r.started_at = r.updated_at = now_ms();
  return r;
}

std::shared_ptr<Spool> open_spool(const std::string& path) {
  auto spool = Spool::open(SpoolOptions{path});
  EXPECT_TRUE(spool) << spool.error();
  return std::shared_ptr<Spool>(std::move(spool).value());
}

}  // namespace

TEST(SpoolWriter, QueuedRecordsReachTheSpoolWithinATickWithoutAFlush) {
  test::TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  SpoolWriter::Options options;
  options.max_sleep = 60s;  // nothing else would wake it: the enqueue must
  SpoolWriter writer(spool, options, {});
  // Let the writer fall asleep first (its start-up pass is over).
  std::this_thread::sleep_for(300ms);
  writer.enqueue(record("a"));
  writer.enqueue(record("b"));
  EXPECT_TRUE(test::wait_until([&] { return writer.records_spooled() == 2; }, 5s))
      << "records must not wait for the next periodic wake-up";
  writer.enqueue(record("c"));
  EXPECT_TRUE(test::wait_until([&] { return writer.records_spooled() == 3; }, 5s));
  auto stats = spool->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->pending, 3u);
}

TEST(SpoolWriter, PeriodicWorkRunsWhenItIsDueAndTheWriterSleepsBetween) {
  test::TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  std::atomic<int> ticks{0};
  std::atomic<int64_t> due_every{400};  // ms; then "never"
  SpoolWriter::Hooks hooks;
  hooks.on_tick = [&](int64_t now) {
    ++ticks;
    const int64_t every = due_every.load();
    return every > 0 ? now + every : INT64_MAX;
  };
  SpoolWriter::Options options;
  options.max_sleep = 60s;
  SpoolWriter writer(spool, options, std::move(hooks));

  // Due every 400 ms: about 2.5 calls a second, where a fixed 200 ms tick made 5.
  EXPECT_TRUE(test::wait_until([&] { return ticks.load() >= 4; }, 5s)) << "on_tick must run when due";
  // Nothing due any more: the writer sleeps (up to max_sleep) — no call in a second.
  due_every = 0;
  std::this_thread::sleep_for(1s);  // the call already scheduled (<= 400 ms away) happens
  const int settled = ticks.load();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(ticks.load(), settled) << "an idle writer must not wake on a fixed tick";

  // A batch asks on_tick again (a session may have opened with an earlier interim).
  writer.enqueue(record("a"));
  EXPECT_TRUE(test::wait_until([&] { return ticks.load() > settled; }, 5s));
  EXPECT_TRUE(writer.flush(5s));
  EXPECT_EQ(writer.records_spooled(), 1u);
}
