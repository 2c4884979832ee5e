// Several processes on one spool, writers killed with SIGKILL, recovery of dead
// writers' sessions. Uses fork(): the children run only spool code and _exit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"
#include "test_records.hpp"
#include "test_support.hpp"

using namespace streamtally;
using streamtally::test::sample_record;
using streamtally::test::TempDir;

namespace {

std::unique_ptr<Spool> open_spool(const std::string& path) {
  SpoolOptions options;
  options.path = path;
  auto spool = Spool::open(options);
  if (!spool) return nullptr;
  return std::move(spool).value();
}

template <class F>
pid_t fork_child(F&& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = body();
    } catch (...) {
    }
    _exit(code);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(SpoolReliability, ConcurrentWritersAndUploadersLoseNothingAndNeverShareARecord) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  open_spool(path);  // create the schema once
  constexpr int kWriters = 3, kPerWriter = 1500, kClaimers = 2;
  std::vector<pid_t> writers, claimers;
  for (int w = 0; w < kWriters; ++w)
    writers.push_back(fork_child([&, w] {
      auto spool = open_spool(path);
      if (!spool) return 2;
      for (int i = 0; i < kPerWriter; i += 50) {
        std::vector<SessionRecord> batch;
        for (int k = i; k < i + 50; ++k)
          batch.push_back(sample_record("w" + std::to_string(w) + "-" + std::to_string(k), 0, true));
        if (auto appended = spool->append(batch); !appended.ok()) {
          std::fprintf(stderr, "writer %d: %s\n", w, appended.error().c_str());
          return 3;
        }
      }
      return 0;
    }));
  const std::string done_flag = dir.file("writers-done");
  for (int c = 0; c < kClaimers; ++c)
    claimers.push_back(fork_child([&, c] {
      auto spool = open_spool(path);
      if (!spool) return 2;
      std::ofstream out(dir.file("claimed-" + std::to_string(c)));
      for (;;) {
        const bool writers_done = std::filesystem::exists(done_flag);
        auto batch = spool->claim(100, std::chrono::seconds(120));
        if (!batch.ok()) {
          std::fprintf(stderr, "claimer %d: %s\n", c, batch.error().c_str());
          return 3;
        }
        if (!batch->has_value()) {
          if (writers_done) return 0;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        for (const auto& line : (*batch)->lines) out << decode_record(line).value().session_id << '\n';
        out.flush();
        if (!spool->ack((*batch)->batch_id).ok()) return 4;
      }
    }));
  for (pid_t p : writers) EXPECT_EQ(wait_exit(p), 0);
  std::ofstream(done_flag) << "1";
  for (pid_t p : claimers) EXPECT_EQ(wait_exit(p), 0);

  std::multiset<std::string> seen;
  for (int c = 0; c < kClaimers; ++c) {
    std::ifstream in(dir.file("claimed-" + std::to_string(c)));
    for (std::string id; std::getline(in, id);) seen.insert(id);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kWriters * kPerWriter));
  for (int w = 0; w < kWriters; ++w)
    for (int k = 0; k < kPerWriter; ++k)
      ASSERT_EQ(seen.count("w" + std::to_string(w) + "-" + std::to_string(k)), 1u) << w << "-" << k;
  EXPECT_EQ(open_spool(path)->stats()->pending, 0u);
}

TEST(SpoolReliability, WriterKilledMidTransactionLeavesAConsistentFile) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  const std::string progress = dir.file("committed");
  constexpr int kBatch = 500;
  const pid_t child = fork_child([&] {
    auto spool = open_spool(path);
    for (int b = 0;; ++b) {
      std::vector<SessionRecord> batch;
      for (int k = 0; k < kBatch; ++k) batch.push_back(sample_record("b" + std::to_string(b) + "-" + std::to_string(k)));
      if (!spool->append(batch).ok()) return 3;
      {
        std::ofstream(progress + ".tmp") << (b + 1) * kBatch;
      }
      std::filesystem::rename(progress + ".tmp", progress);  // the parent never reads half a number
    }
    return 0;
  });
  ASSERT_TRUE(streamtally::test::wait_until([&] { return std::filesystem::exists(progress); },
                                            std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
  const long reported = std::stol(streamtally::test::read_file(progress));

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);

  auto spool = open_spool(path);
  const uint64_t pending = spool->stats()->pending;
  EXPECT_GE(pending, static_cast<uint64_t>(reported));  // nothing committed was lost
  EXPECT_EQ(pending % kBatch, 0u);                      // transactions are all or nothing
}

TEST(SpoolReliability, OpenSessionsOfADeadWriterAreClosedAsRecovered) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  auto spool = open_spool(path);
  // A live writer's open session must not be touched.
  int to_live[2], from_live[2];
  ASSERT_EQ(pipe(to_live), 0);
  ASSERT_EQ(pipe(from_live), 0);
  const pid_t live = fork_child([&] {
    auto s = open_spool(path);
    if (!s->append(std::vector{sample_record("alive", 0)}).ok()) return 3;
    char c = 1;
    if (write(from_live[1], &c, 1) != 1) return 4;
    return read(to_live[0], &c, 1) == 1 ? 0 : 5;  // stays alive until told
  });
  const pid_t dead = fork_child([&] {
    auto s = open_spool(path);
    SessionRecord a0 = sample_record("dies-a", 0), a1 = sample_record("dies-a", 1);
    a1.bytes_out = 123456789;
    if (!s->append(std::vector{a0, a1, sample_record("dies-b", 0)}).ok()) return 3;
    if (!s->append(std::vector{sample_record("closed-c", 0), sample_record("closed-c", 1, true)}).ok()) return 3;
    kill(getpid(), SIGKILL);  // no destructor, no goodbye
    return 0;
  });
  char c;
  ASSERT_EQ(read(from_live[0], &c, 1), 1);
  EXPECT_EQ(wait_exit(dead), 128 + SIGKILL);

  auto recovered = spool->recover_dead_writers();
  ASSERT_TRUE(recovered.ok()) << recovered.error();
  EXPECT_EQ(*recovered, 2u);
  EXPECT_EQ(*spool->recover_dead_writers(), 0u);  // once only

  std::map<std::string, SessionRecord> latest;
  for (const auto& line : *spool->pending_lines()) {
    SessionRecord r = decode_record(line).value();
    if (!latest.count(r.session_id) || latest[r.session_id].seq < r.seq) latest[r.session_id] = r;
  }
  ASSERT_EQ(latest.count("dies-a"), 1u);
  EXPECT_EQ(latest["dies-a"].state, SessionState::Closed);
  EXPECT_EQ(latest["dies-a"].end_reason, EndReason::Recovered);
  EXPECT_EQ(latest["dies-a"].seq, 2);
  EXPECT_EQ(latest["dies-a"].bytes_out, 123456789u);
  EXPECT_EQ(latest["dies-a"].ended_at, latest["dies-a"].updated_at);
  EXPECT_EQ(latest["dies-b"].end_reason, EndReason::Recovered);
  EXPECT_EQ(latest["closed-c"].end_reason, EndReason::Client);  // closed normally, untouched
  EXPECT_EQ(latest["alive"].state, SessionState::Open);

  c = 1;
  ASSERT_EQ(write(to_live[1], &c, 1), 1);
  EXPECT_EQ(wait_exit(live), 0);
  // It left without closing "alive" (its Spool destructor keeps the writer since a
  // session is open) and its process is gone now: recoverable.
  EXPECT_EQ(*spool->recover_dead_writers(), 1u);
}

TEST(SpoolReliability, FullDiskDropsAndCountsButNeverFailsTheHost) {
  TempDir dir;
  const std::string mnt = dir.file("small-disk");
  std::filesystem::create_directories(mnt);
  // A real full disk: a 2 MiB tmpfs. Needs mount(2) (root in CI); skipped elsewhere.
  if (streamtally::test::run_command({"mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt},
                                     std::chrono::seconds(10)).exit_code != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    std::string path;
    ~Unmount() { streamtally::test::run_command({"umount", "-l", path}, std::chrono::seconds(10)); }
  } unmount{mnt};

  auto spool = open_spool(mnt + "/spool.db");  // cap (1 GiB) far above the disk
  ASSERT_TRUE(spool);
  uint64_t attempted = 0, dropped = 0;
  for (int b = 0; b < 60; ++b) {
    std::vector<SessionRecord> batch;
    for (int k = 0; k < 100; ++k) {
      SessionRecord r = sample_record("d" + std::to_string(b) + "-" + std::to_string(k), 0, true);
      r.user_agent = std::string(600, 'x');
      batch.push_back(r);
    }
    auto result = spool->append(batch);
    if (!result.ok()) continue;  // refused outright: the caller keeps and retries them
    attempted += batch.size();
    dropped += result->dropped;
  }
  auto stats = spool->stats();
  ASSERT_TRUE(stats.ok()) << stats.error();
  EXPECT_GT(dropped, 0u);                        // the disk did fill up
  EXPECT_GT(stats->pending, 0u);                 // and the spool kept what it could
  EXPECT_EQ(stats->pending + dropped, attempted);  // every record is either kept or counted
}

TEST(SpoolReliability, ProcessesOpeningANewSpoolAtOnceAllSucceed) {
  // nginx starts its workers together and each opens the (new) spool at the same instant.
  for (int round = 0; round < 5; ++round) {
    TempDir dir;
    const std::string path = dir.file("spool.db");
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    std::vector<pid_t> children;
    for (int p = 0; p < 6; ++p)
      children.push_back(fork_child([&, p] {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 0) return 5;  // released together when the pipe closes
        auto spool = open_spool(path);
        if (!spool) return 2;
        return spool->append(std::vector{sample_record("p" + std::to_string(p))}).ok() ? 0 : 3;
      }));
    close(go[0]);
    close(go[1]);
    for (pid_t c : children) EXPECT_EQ(wait_exit(c), 0) << "round " << round;
    EXPECT_EQ(open_spool(path)->stats()->pending, 6u);
  }
}
