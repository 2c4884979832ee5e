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

// Sessions "s0" .. "s<n-1>", one update each (seq).
std::vector<SessionRecord> sessions_s0_to(int n, int64_t seq) {
  std::vector<SessionRecord> records;
  for (int i = 0; i < n; ++i) records.push_back(sample_record("s" + std::to_string(i), seq));
  return records;
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
  ASSERT_EQ(spool->append(sessions_s0_to(10, 0))->appended, 10u);

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

TEST(Spool, AnAckLeavesTheRowsOfABatchClaimedBetweenItsOwn) {
  // Batches interleave in id order once one is released: the ack of the outer batch
  // must dequeue its own rows only (an ack dequeues a whole id range at once when the
  // range holds nothing else), and a claim skips the leased rows wherever they are.
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_EQ(spool->append(sessions_s0_to(10, 0))->appended, 10u);
  auto first = spool->claim(3, std::chrono::seconds(60));
  auto middle = spool->claim(3, std::chrono::seconds(60));
  ASSERT_TRUE(first->has_value() && middle->has_value());
  ASSERT_TRUE(spool->release((*first)->batch_id).ok());
  auto outer = spool->claim(100, std::chrono::seconds(60));  // s0-s2 and s6-s9, around the middle batch
  ASSERT_TRUE(outer->has_value());
  ASSERT_EQ((*outer)->lines.size(), 7u);
  EXPECT_EQ(decode_record((*outer)->lines.front()).value().session_id, "s0");
  EXPECT_EQ(decode_record((*outer)->lines[3]).value().session_id, "s6");
  ASSERT_TRUE(spool->ack((*outer)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 3u);  // the middle batch's rows are still queued
  ASSERT_TRUE(spool->release((*middle)->batch_id).ok());
  auto rest = spool->claim(100, std::chrono::seconds(60));
  ASSERT_TRUE(rest->has_value());
  EXPECT_EQ((*rest)->lines, (*middle)->lines);
  ASSERT_TRUE(spool->ack((*rest)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
}

TEST(Spool, AnUpdateQueuedInsideADeliveredBatchStays) {
  // A newer update of a session in the middle of a batch arrives while it is in flight:
  // the ack dequeues every other row and leaves that one for the next batch.
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_EQ(spool->append(sessions_s0_to(5, 1))->appended, 5u);
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_EQ((*batch)->lines.size(), 5u);
  ASSERT_TRUE(spool->append(std::vector{sample_record("s2", 2)}).ok());
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());
  auto lines = decode_all(*spool->pending_lines());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].session_id, "s2");
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
  EXPECT_EQ(spool->stats()->claimed, 1u);  // only the live lease counts
  // The old owner did deliver before its late ack: that counts, and the new owner's
  // second delivery of the same update is harmless (the collector keeps the highest seq).
  EXPECT_TRUE(spool->ack((*dying)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
  EXPECT_TRUE(spool->ack((*retry)->batch_id).ok());
  EXPECT_EQ(spool->stats()->claimed, 0u);
  EXPECT_FALSE(spool->claim(10, std::chrono::seconds(60))->has_value());
}

TEST(Spool, OnlyTheClaimingProcessEndsABatch) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("a")}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(batch->has_value());
  auto other = open_spool(dir.file("spool.db"));  // another process's view of the file
  const Status ack = other->ack((*batch)->batch_id);
  ASSERT_FALSE(ack.ok());
  EXPECT_NE(ack.error().find("not in flight"), std::string::npos) << ack.error();
  EXPECT_FALSE(other->claim(10, std::chrono::seconds(60))->has_value());  // still leased
  EXPECT_TRUE(spool->ack((*batch)->batch_id).ok());
  EXPECT_EQ(other->stats()->pending, 0u);
}

TEST(Spool, DeadLettersCanBeListedRequeuedAndPurged) {
  TempDir dir;
  auto spool = open_spool(dir.file("spool.db"));
  ASSERT_TRUE(spool->append(std::vector{sample_record("a"), sample_record("b")}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(spool->dead_letter(**batch, "line 2: field \"seq\" must be an integer", 400).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
  auto letters = spool->dead_letters();
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].http_status, 400);
  EXPECT_EQ((*letters)[0].batch_id, (*batch)->batch_id);
  EXPECT_EQ(*spool->requeue_dead_letters(), 2u);
  EXPECT_EQ(spool->stats()->pending, 2u);
  EXPECT_EQ(spool->stats()->dead_letters, 0u);
  batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(spool->dead_letter(**batch, "bad", 400).ok());
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

// A spool written by schema version 2 (send state inside the session rows) keeps every
// pending record and its snapshots after the upgrade, and works on as version 3.
TEST(Spool, MigratesSchemaVersion2) {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  const std::string pending_open = encode_record(sample_record("pending-open", 3));
  const std::string pending_closed = encode_record(sample_record("pending-closed", 2, true));
  const std::string sent_open = encode_record(sample_record("sent-open", 5));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);"
        "CREATE TABLE sessions(id INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,"
        " sent_seq INTEGER NOT NULL DEFAULT -1, closed INTEGER NOT NULL, writer_id INTEGER NOT NULL,"
        " pending_since INTEGER NOT NULL, claim_id TEXT, claimed_seq INTEGER, lease_until INTEGER, body TEXT NOT NULL);"
        "CREATE INDEX sessions_pending ON sessions(id) WHERE seq > sent_seq;"
        "CREATE TABLE writers(id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL,"
        " start_time INTEGER NOT NULL, host TEXT NOT NULL, started_ms INTEGER NOT NULL);"
        "CREATE TABLE dead_letters(id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, reason TEXT NOT NULL,"
        " http_status INTEGER NOT NULL, created_ms INTEGER NOT NULL, body TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', 2), ('dropped_records', 7), ('dropped_bytes', 700),"
        " ('server_id', 'edge-v2');"
        "INSERT INTO sessions(session_id, seq, sent_seq, closed, writer_id, pending_since, body) VALUES"
        " ('pending-open', 3, 1, 0, 1, 1000, '" + pending_open + "'),"
        " ('pending-closed', 2, -1, 1, 1, 2000, '" + pending_closed + "'),"
        " ('sent-open', 5, 5, 0, 1, 3000, '" + sent_open + "');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto spool = open_spool(path);
  EXPECT_EQ(spool->server_id(), "edge-v2");
  auto stats = spool->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pending, 2u);
  EXPECT_EQ(stats->open_sessions, 2u);
  EXPECT_EQ(stats->dropped_records, 7u);
  EXPECT_EQ(stats->oldest_pending_ms, 1000);
  EXPECT_EQ(*spool->pending_lines(), (std::vector<std::string>{pending_open, pending_closed}));
  // A newer update of a sent session is queued; an older one of a pending session is not.
  ASSERT_TRUE(spool->append(std::vector{sample_record("sent-open", 6), sample_record("pending-open", 2)}).ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(batch.ok() && batch->has_value());
  ASSERT_EQ((*batch)->lines.size(), 3u);
  EXPECT_EQ((*batch)->lines[0], pending_open);
  EXPECT_EQ(decode_record((*batch)->lines[2]).value().seq, 6);
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());
  EXPECT_EQ(spool->stats()->pending, 0u);
  spool.reset();
  EXPECT_EQ(open_spool(path)->stats()->open_sessions, 2u);  // reopening finds version 3
}

// Delivered closed sessions leave the file in bulk, when the uploader sweeps; open
// sessions stay as recovery snapshots, queued ones are never swept.
TEST(Spool, DeliveredClosedSessionsAreSweptInBulk) {
  TempDir dir;
  const std::string path = dir.file("spool.db");
  auto rows_in_file = [&] {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM sessions", -1, &st, nullptr);
    const int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  };
  auto spool = open_spool(path);
  ASSERT_TRUE(spool->append(std::vector{sample_record("c1", 1, true), sample_record("c2", 1, true),
                                        sample_record("open", 1), sample_record("c3", 1, true)})
                  .ok());
  auto batch = spool->claim(10, std::chrono::seconds(60));
  ASSERT_TRUE(batch.ok() && batch->has_value());
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());
  EXPECT_EQ(rows_in_file(), 4);
  EXPECT_FALSE(spool->claim(10, std::chrono::seconds(60))->has_value());  // drained: nothing deleted yet
  EXPECT_EQ(rows_in_file(), 4);
  EXPECT_EQ(*spool->sweep_delivered(2), 2u);  // in chunks
  EXPECT_EQ(rows_in_file(), 2);
  EXPECT_EQ(*spool->sweep_delivered(2), 1u);
  EXPECT_EQ(rows_in_file(), 1);
  EXPECT_EQ(spool->stats()->open_sessions, 1u);
  // A closed session still queued is never swept.
  ASSERT_TRUE(spool->append(std::vector{sample_record("open", 2, true), sample_record("c4", 1, true)}).ok());
  batch = spool->claim(1, std::chrono::seconds(60));  // "open" is delivered, c4 not
  ASSERT_TRUE(spool->ack((*batch)->batch_id).ok());
  EXPECT_EQ(*spool->sweep_delivered(100), 1u);
  EXPECT_EQ(spool->stats()->pending, 1u);
  EXPECT_EQ(rows_in_file(), 1);
}
