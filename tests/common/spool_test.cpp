#include "streamtally/spool.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "streamtally/record_codec.hpp"
#include "test_records.hpp"
#include "test_support.hpp"

using namespace streamtally;
using streamtally::test::sample_record;
using streamtally::test::TempDir;

namespace {

std::unique_ptr<Spool> open_spool(const std::string& path, uint64_t max_bytes = 1ull << 30) {
  SpoolOptions options;
  options.path = path;
  options.max_bytes = max_bytes;
  auto spool = Spool::open(options);
  EXPECT_TRUE(spool.ok()) << (spool.ok() ? "" : spool.error());
  return std::move(spool).value();
}

std::vector<SessionRecord> decode_all(const std::vector<std::string>& lines) {
  std::vector<SessionRecord> out;
  for (const auto& l : lines) out.push_back(decode_record(l).value());
  return out;
}

// Spool files moved aside as corrupt (not counting their -wal / -shm companions).
int moved_aside_files(const TempDir& dir) {
  int n = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    const bool companion = name.ends_with("-wal") || name.ends_with("-shm");
    n += name.starts_with("spool.db.corrupt-") && !companion;
  }
  return n;
}

}  // namespace

TEST(Spool, KeepsAGeneratedServerIdAcrossOpens) {
  TempDir dir;
  std::string id;
  {
    auto spool = open_spool(dir.file("spool.db"));
    id = spool->server_id();
    EXPECT_EQ(id.size(), 36u);
  }
  EXPECT_EQ(open_spool(dir.file("spool.db"))->server_id(), id);
  TempDir other;
  EXPECT_NE(open_spool(other.file("spool.db"))->server_id(), id);
}

TEST(Spool, AppendClaimAckDeletesOnlyAcknowledged) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  std::vector<SessionRecord> records;
  for (int i = 0; i < 10; ++i) records.push_back(sample_record("s" + std::to_string(i)));
  ASSERT_EQ(spool->append(records)->appended, 10u);

  auto first = spool->claim(4, std::chrono::seconds(60));
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->lines.size(), 4u);
  auto second = spool->claim(100, std::chrono::seconds(60));
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->lines.size(), 6u);  // the first batch is leased: not claimed twice
  EXPECT_NE((*first)->batch_id, (*second)->batch_id);

  ASSERT_TRUE(spool->ack((*first)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 6u);
  ASSERT_TRUE(spool->release((*second)->batch_id).ok());
  auto again = spool->claim(100, std::chrono::seconds(60));
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->lines, (*second)->lines);  // oldest first, same records
  ASSERT_TRUE(spool->ack((*again)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
  EXPECT_FALSE(spool->claim(100, std::chrono::seconds(60))->has_value());
}

TEST(Spool, NewerUnsentUpdateSupersedesOlderOne) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  for (int seq = 0; seq < 50; ++seq) ASSERT_TRUE(spool->append(std::vector{sample_record("long", seq)}).ok());
  ASSERT_TRUE(spool->append(std::vector{sample_record("long", 10)}).ok());  // a stale one does not win
  auto lines = spool->pending_lines();
  ASSERT_EQ(lines->size(), 1u);
  EXPECT_EQ(decode_all(*lines)[0].seq, 49);
}

TEST(Spool, UpdateWhileInFlightIsSentAfterTheAck) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("a", 1)}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_EQ(decode_record((*batch)->lines[0]).value().seq, 1);
  ASSERT_TRUE(spool->append(std::vector{sample_record("a", 2)}).ok());
  EXPECT_FALSE(spool->claim(10, std::chrono::seconds(60))->has_value());  // the session is in flight
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());                       // seq 1 delivered, seq 2 not
  auto next = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(decode_record((*next)->lines[0]).value().seq, 2);
  ASSERT_TRUE(spool->release((*next)->batch_id).ok());
  auto lines = decode_all(*spool->pending_lines());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].seq, 2);
}

TEST(Spool, ClosedSessionsLeaveTheFileOnceDeliveredOpenOnesStayForRecovery) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("open", 3), sample_record("done", 4, true)}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());
  auto stats = spool->stats();
  EXPECT_EQ(stats->pending, 0u);
  EXPECT_EQ(stats->open_sessions, 1u);  // "open" is kept as its snapshot, "done" is gone
}

TEST(Spool, ExpiredLeaseCanBeClaimedAgain) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("a")}).ok());
  auto dying = spool->claim(10, std::chrono::milliseconds(1));
  ASSERT_TRUE(dying->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto retry = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(retry->has_value());
  EXPECT_EQ((*retry)->lines, (*dying)->lines);
  EXPECT_TRUE(spool->ack((*dying)->batch_id).ok());  // the old owner's late ack removes nothing
  EXPECT_EQ(spool->stats()->pending, 1u);
}

TEST(Spool, DeadLettersCanBeListedRequeuedAndPurged) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("a"), sample_record("b")}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(spool->dead_letter((*batch)->batch_id, "line 2: field \"seq\" must be an integer", 400).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
  auto letters = spool->dead_letters();
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].http_status, 400);
  EXPECT_EQ((*letters)[0].batch_id, (*batch)->batch_id);
  EXPECT_EQ(*spool->requeue_dead_letters(), 2u);
  EXPECT_EQ(spool->stats()->pending, 2u);
  EXPECT_EQ(spool->stats()->dead_letters, 0u);
  batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(spool->dead_letter((*batch)->batch_id, "bad", 400).ok());
  EXPECT_EQ(*spool->purge_dead_letters(), 2u);
  EXPECT_EQ(spool->stats()->dead_letters, 0u);
}

TEST(Spool, SizeCapDropsOldestAndCountsExactly) {
  TempDir dir;
  const uint64_t cap = 512 * 1024;
  auto spool = open_spool(dir.file("spool.db"), cap);
  uint64_t appended = 0, dropped = 0;
  for (int batch = 0; batch < 40; ++batch) {
    std::vector<SessionRecord> records;
    for (int i = 0; i < 100; ++i) {
      SessionRecord r = sample_record("s-" + std::to_string(batch) + "-" + std::to_string(i), 0, true);
      r.user_agent = std::string(400, 'u');
      records.push_back(r);
    }
    auto result = spool->append(records);
    ASSERT_TRUE(result.ok()) << result.error();
    appended += result->appended;
    dropped += result->dropped;
  }
  auto stats = spool->stats();
  EXPECT_GT(dropped, 0u);
  EXPECT_LE(stats->bytes, cap);
  EXPECT_EQ(stats->dropped_records, dropped);
  EXPECT_EQ(stats->pending + dropped, appended);  // every record is either here or counted
  // What was dropped is the oldest: the newest record is still there.
  auto lines = decode_all(*spool->pending_lines());
  EXPECT_EQ(lines.back().session_id, "s-39-99");
  EXPECT_NE(lines.front().session_id, "s-0-0");
}

TEST(Spool, CorruptFileIsMovedAsideAndAFreshSpoolWorks) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  {
    std::ofstream junk(path, std::ios::binary);
    for (int i = 0; i < 10000; ++i) junk << "this is not an SQLite database ";
  }
  auto spool = open_spool(path);
  ASSERT_TRUE(spool);
  ASSERT_TRUE(spool->append(std::vector{sample_record("fresh")}).ok());
  EXPECT_EQ(spool->stats()->pending, 1u);
  EXPECT_EQ(moved_aside_files(dir), 1);
}

TEST(Spool, DamagedPagesAreDetectedAndMovedAside) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  {
    auto spool = open_spool(path);
    std::vector<SessionRecord> records;
    for (int i = 0; i < 2000; ++i) records.push_back(sample_record("s" + std::to_string(i)));
    ASSERT_TRUE(spool->append(records).ok());
  }
  {
    // Checkpoint the WAL into the file, then overwrite pages in its middle.
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 3);
    const std::string garbage(4096 * 8, '\x5A');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  // The damage is found when the spool opens (it reads its tables) or at the first read
  // that meets it; either way the file is moved aside once and a fresh spool goes on.
  auto spool = open_spool(path);
  auto lines = spool->pending_lines();
  if (!lines.ok()) {
    EXPECT_NE(lines.error().find("corrupt"), std::string::npos) << lines.error();
  }
  ASSERT_TRUE(spool->append(std::vector{sample_record("after")}).ok());
  auto after = spool->pending_lines();
  ASSERT_TRUE(after.ok()) << after.error();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(decode_record((*after)[0]).value().session_id, "after");
  EXPECT_EQ(moved_aside_files(dir), 1);
}
