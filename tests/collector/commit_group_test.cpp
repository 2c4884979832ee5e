// SqliteStore's group commit and inbox, in process: batches ingested by several
// threads at once share transactions, each keeps its own verdict, each is durable when
// ingest() returns, and a batch that fails inside the store leaves no trace — neither
// in the file nor in the writer's memory (the same data re-sent afterwards gives
// exactly the answers of a store that never saw the failure). Acknowledged records
// that could not be applied yet (a failing apply, a process killed with -9) are
// applied later, and the answers are the same.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "batch_decoder.hpp"
#include "inbox_codec.hpp"
#include "report_api.hpp"
#include "sqlite_database.hpp"
#include "sqlite_schema.hpp"
#include "sqlite_store.hpp"
#include "streamtally/gzip.hpp"
#include "streamtally/record_codec.hpp"
#include "update_chain.hpp"
#include "test_support.hpp"

namespace streamtally::collector {
namespace {

constexpr int64_t kStart = 1'794'000'000'000;
constexpr int64_t kPoisonBytesOut = 666'666'666;  // the test trigger refuses this value

// One more record, a later update of the batch's last session, that a test trigger
// refuses (refuse_poisoned_records(), or one on the batch's key): a disk error stand-in.
void add_poisoned_record(IngestBatch& batch) {
  IngestRecord extra = batch.records.back();
  extra.record.seq += 100;
  extra.record.bytes_out = kPoisonBytesOut;
  batch.records.push_back(extra);
}

// The test's enrichment: from the record alone, as the collector's (odd sessions "DE").
void derive(IngestRecord& in) { in.country = std::stoi(in.record.session_id.substr(2)) % 2 ? "DE" : "US"; }

// Sessions with an update every 60 s (1 to max_updates), in arrival order (by
// updated_at), cut into batches of `batch_size`.
std::vector<IngestBatch> make_batches(int sessions, std::size_t batch_size, int max_updates = 6) {
  std::mt19937_64 rng(7);
  std::vector<IngestRecord> all;
  for (int i = 0; i < sessions; ++i) {
    SessionRecord s;
    s.server_id = "edge-" + std::to_string(i % 3);
    s.host = s.server_id + ".example.net";
    s.session_id = "s-" + std::to_string(i);
    s.type = i % 7 == 0 ? SessionType::Publish : SessionType::Play;
    s.protocol = i % 2 ? Protocol::Hls : Protocol::Rtmp;
    s.stream = "live/" + std::to_string(i % 5);
    s.client_ip = "10.0.0." + std::to_string(i % 250);
    s.user_agent = "VLC/3.0.18 LibVLC/3.0.18";
    s.started_at = kStart + static_cast<int64_t>(rng() % 600'000);
    const int updates = 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_updates));
    for (int seq = 0; seq < updates; ++seq) {
      IngestRecord in;
      in.record = s;
      in.record.seq = seq;
      in.record.updated_at = s.started_at + (seq + 1) * 60'000 - static_cast<int64_t>(rng() % 5'000);
      in.record.bytes_out = static_cast<uint64_t>((seq + 1) * 1'000'000 + i);
      in.record.bytes_in = static_cast<uint64_t>(seq * 100);
      if (seq + 1 == updates) {
        in.record.state = SessionState::Closed;
        in.record.ended_at = in.record.updated_at;
        in.record.end_reason = EndReason::Client;
      }
      derive(in);
      all.push_back(std::move(in));
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.record.updated_at < b.record.updated_at; });
  std::vector<IngestBatch> batches;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % batch_size == 0) {
      batches.emplace_back();
      batches.back().idempotency_key = "batch-" + std::to_string(batches.size());
    }
    batches.back().records.push_back(all[i]);
  }
  return batches;
}

// The batch as the HTTP layer has it when its client sent gzip NDJSON: the store keeps
// that body as the inbox row, and reads it back by decoding and deriving again.
IngestBatch as_sent_gzip(const IngestBatch& batch) {
  std::string ndjson;
  for (const IngestRecord& in : batch.records) encode_record(in.record, ndjson), ndjson += '\n';
  IngestBatch sent;
  EXPECT_FALSE(decode_batch("gzip", gzip_compress(ndjson), {}, derive, sent));
  sent.idempotency_key = batch.idempotency_key;
  EXPECT_EQ(sent.records.size(), batch.records.size());
  return sent;
}

// What the reports say: bytes/viewtime per minute, totals per stream, every session.
std::string answers(Store& store) {
  ReportApi api(store);
  const std::string range = "&from=" + std::to_string(kStart - 3'600'000) + "&to=" + std::to_string(kStart + 7'200'000);
  const int64_t now = kStart + 7'200'000;
  std::string out;
  for (const auto& r : {api.events("dimensions=stream,type&metrics=sessions,views,viewtime,bytes_in,bytes_out" + range, now),
                        api.events("dimensions=country&metrics=sessions,viewtime,bytes_out,unique_viewers" + range, now),
                        api.timeseries("metrics=bytes_out,viewtime,ccu&bucket=1m" + range, now),
                        // from the rollups: ccu above makes the whole query a session scan
                        api.timeseries("dimensions=stream&metrics=bytes_out,viewtime,sessions&bucket=1m" + range, now),
                        api.sessions("group=all&limit=10000" + range, now)}) {
    EXPECT_EQ(r.status, 200) << r.body;
    out += r.body + "\n";
  }
  return out;
}

// Once its session key filter is loaded: admission then reads the store only for the
// sessions the filter may hold, the path these tests must check (before, it reads the
// store for every session it has not seen).
StoreOptions store_options() {
  StoreOptions options;
  options.enrich = derive;
  return options;
}
std::unique_ptr<SqliteStore> open_store_at(const std::string& path) {
  auto store = SqliteStore::open(path, store_options());
  EXPECT_TRUE(store.ok()) << (store ? "" : store.error());
  if (!store) return nullptr;
  EXPECT_TRUE(test::wait_until([&] { return (*store)->session_keys_loaded(); }, std::chrono::seconds(30)));
  return std::move(*store);
}

// The Idempotency-Key of a batch is in the inbox file, seen by a separate connection.
bool durable(const std::string& path, const std::string& key) {
  auto db = open_database(path + "-inbox", true);
  Statement q(db->get(), "SELECT 1 FROM batches WHERE idempotency_key = ?1");
  q.bind(1, key);
  return q.step();
}

// A store that ingested the batches one by one, without failures: the answers to expect.
std::unique_ptr<SqliteStore> reference_store(const test::TempDir& dir, const std::vector<IngestBatch>& batches) {
  auto reference = open_store_at(dir.file("reference.db"));
  for (const auto& b : batches) EXPECT_TRUE(reference->ingest(b).ok());
  return reference;
}

// A batch sent again changes nothing: with its key it replays; without a key every
// record is a duplicate.
void expect_resend_is_harmless(Store& store, const IngestBatch& batch) {
  auto replay = store.ingest(batch);
  ASSERT_TRUE(replay.ok()) << replay.error();
  EXPECT_TRUE(replay->replayed);
  IngestBatch again = batch;
  again.idempotency_key.clear();
  auto duplicates = store.ingest(again);
  ASSERT_TRUE(duplicates.ok()) << duplicates.error();
  EXPECT_FALSE(duplicates->replayed);
  EXPECT_EQ(duplicates->accepted, 0);
  EXPECT_EQ(duplicates->duplicates, static_cast<int64_t>(again.records.size()));
}

TEST(CommitGroup, ConcurrentBatchesAreEachDurableAndGiveTheSequentialAnswers) {
  test::TempDir dir;
  const auto batches = make_batches(400, 50);
  ASSERT_GT(batches.size(), 20u);

  auto sequential = open_store_at(dir.file("sequential.db"));
  int64_t expected_accepted = 0;
  for (const auto& b : batches) {
    auto outcome = sequential->ingest(b);
    ASSERT_TRUE(outcome.ok());
    expected_accepted += outcome->accepted;
  }

  const std::string path = dir.file("concurrent.db");
  auto concurrent = open_store_at(path);
  std::atomic<std::size_t> next{0};
  std::atomic<int64_t> accepted{0}, not_durable{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (std::size_t i; (i = next++) < batches.size();) {
        auto outcome = concurrent->ingest(batches[i]);
        if (!outcome) {
          ++failed;
          continue;
        }
        accepted += outcome->accepted;
        if (!durable(path, batches[i].idempotency_key)) ++not_durable;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(not_durable.load(), 0);
  // Batches interleave differently, so a session's updates may arrive in another
  // order; the chain makes the answers independent of it.
  EXPECT_EQ(accepted.load(), expected_accepted);
  EXPECT_EQ(answers(*concurrent), answers(*sequential));

  // Re-sent batches (same keys) replay; re-sent records without a key are duplicates.
  expect_resend_is_harmless(*concurrent, batches[3]);
  EXPECT_EQ(answers(*concurrent), answers(*sequential));
}

TEST(CommitGroup, AFailingBatchLeavesNoTraceAndTheOthersCommit) {
  test::TempDir dir;
  auto batches = make_batches(300, 40);
  auto reference = reference_store(dir, batches);

  // Every third batch carries one more record and is refused by the store (a trigger
  // on its Idempotency-Key stands in for a disk error) after its records were written
  // to the inbox inside the transaction.
  const std::string path = dir.file("poisoned.db");
  auto store = open_store_at(path);
  std::vector<IngestBatch> sent = batches;
  std::vector<bool> poisoned(sent.size(), false);
  std::string keys;
  for (std::size_t i = 0; i < sent.size(); i += 3) {
    add_poisoned_record(sent[i]);
    poisoned[i] = true;
    keys += (keys.empty() ? "'" : ", '") + sent[i].idempotency_key + "'";
  }
  {
    auto db = open_database(path + "-inbox", false);
    ASSERT_TRUE(exec_sql_status(db->get(), ("CREATE TRIGGER poison BEFORE INSERT ON batches WHEN "
                                            "NEW.idempotency_key IN (" + keys + ") "
                                            "BEGIN SELECT RAISE(ABORT, 'poisoned batch'); END").c_str())
                    .ok());
  }
  std::atomic<std::size_t> next{0};
  std::vector<int> verdicts(sent.size(), -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&] {
      for (std::size_t i; (i = next++) < sent.size();) verdicts[i] = store->ingest(sent[i]).ok() ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(verdicts[i], poisoned[i] ? 0 : 1) << "batch " << i;
    EXPECT_EQ(durable(path, sent[i].idempotency_key), !poisoned[i]) << "batch " << i;
  }

  // The edge re-sends the refused batches (now without the extra record, same keys,
  // the disk error gone): the store must end exactly where the reference is, so nothing
  // of the failed attempts stayed behind in the file or in the writer's memory.
  {
    auto db = open_database(path + "-inbox", false);
    ASSERT_TRUE(exec_sql_status(db->get(), "DROP TRIGGER poison").ok());
  }
  for (std::size_t i = 0; i < sent.size(); ++i)
    if (poisoned[i]) {
      auto outcome = store->ingest(batches[i]);
      ASSERT_TRUE(outcome.ok());
      EXPECT_FALSE(outcome->replayed);
      EXPECT_EQ(outcome->duplicates, 0) << "batch " << i;
    }
  EXPECT_EQ(answers(*store), answers(*reference));

  // And after a restart (caches empty, everything read back from the file).
  store.reset();
  auto reopened = open_store_at(path);
  EXPECT_EQ(answers(*reopened), answers(*reference));
}

// Records waiting in the inbox file, seen by a separate connection.
int64_t inbox_records(const std::string& path) {
  auto db = open_database(path + "-inbox", true);
  Statement q(db->get(), "SELECT coalesce(sum(records), 0) FROM inbox");
  return q.step() ? q.int64(0) : -1;
}

// Inserted or updated: a session new in an apply is inserted with its latest record.
Status refuse_poisoned_records(sqlite3* db) {
  for (const char* event : {"INSERT", "UPDATE"}) {
    const std::string sql = std::string("CREATE TRIGGER poison_") + event + " BEFORE " + event +
                            " ON sessions WHEN NEW.bytes_out = " + std::to_string(kPoisonBytesOut) +
                            " BEGIN SELECT RAISE(ABORT, 'poisoned record'); END";
    if (Status s = exec_sql_status(db, sql.c_str()); !s) return s;
  }
  return Status::Ok();
}
Status accept_poisoned_records(sqlite3* db) {
  return exec_sql_status(db, "DROP TRIGGER poison_INSERT; DROP TRIGGER poison_UPDATE");
}
// A connection to the store file at `path` (another process's, as far as the store
// knows) that made its tables refuse the poisoned records.
SqliteDb connection_refusing_poisoned_records(const std::string& path) {
  auto db = open_database(path, false);
  EXPECT_TRUE(db.ok());
  if (!db) return {};
  EXPECT_TRUE(refuse_poisoned_records(db->get()).ok());
  return std::move(*db);
}

TEST(Inbox, AFailingApplyKeepsTheRecordsUntilItSucceeds) {
  test::TempDir dir;
  auto batches = make_batches(200, 40);
  // One record the tables refuse (a trigger on the sessions table stands in for a disk
  // error while applying); acknowledging it works, applying it fails until it is gone.
  add_poisoned_record(batches[2]);
  auto reference = reference_store(dir, batches);

  const std::string path = dir.file("stuck.db");
  auto store = open_store_at(path);
  SqliteDb db = connection_refusing_poisoned_records(path);
  int64_t accepted = 0;
  for (const auto& b : batches) {
    auto outcome = store->ingest(b);
    ASSERT_TRUE(outcome.ok()) << outcome.error();
    accepted += outcome->accepted;
  }
  EXPECT_EQ(accepted, inbox_records(path));  // all acknowledged, none applied yet

  // A report cannot see what was acknowledged: it says so instead of answering without it.
  ReportApi api(*store);
  const auto refused = api.events("dimensions=stream&metrics=sessions&from=0&to=" + std::to_string(kStart + 7'200'000),
                                  kStart + 7'200'000);
  EXPECT_EQ(refused.status, 500);
  EXPECT_NE(refused.body.find("applying the inbox"), std::string::npos) << refused.body;
  EXPECT_EQ(inbox_records(path), accepted);

  // Closing cannot apply either, and opening again refuses to start without it: the
  // records wait in the file, nothing is lost.
  store.reset();
  EXPECT_EQ(inbox_records(path), accepted);
  auto refused_open = SqliteStore::open(path);
  ASSERT_FALSE(refused_open.ok());
  EXPECT_NE(refused_open.error().find("applying the inbox"), std::string::npos) << refused_open.error();

  // The cause goes away: everything is applied, exactly once.
  ASSERT_TRUE(accept_poisoned_records(db.get()).ok());
  auto reopened = open_store_at(path);
  EXPECT_EQ(inbox_records(path), 0);
  EXPECT_EQ(answers(*reopened), answers(*reference));
}

// The records of a failed apply came from the inbox handoff (inbox_handoff.hpp) and are
// gone with it; rows acknowledged after it are held again. The next apply reads the
// failed rows from the file first: none is skipped.
TEST(Inbox, RowsOfAFailedApplyAreReadFromTheFileBeforeTheRowsHeldAfterThem) {
  test::TempDir dir;
  auto batches = make_batches(200, 40);
  add_poisoned_record(batches[0]);
  auto reference = reference_store(dir, batches);

  const std::string path = dir.file("retried.db");
  auto store = open_store_at(path);
  SqliteDb db = connection_refusing_poisoned_records(path);
  ASSERT_TRUE(store->ingest(batches[0]).ok());
  ASSERT_FALSE(store->apply_inbox().ok());  // took the first batch's records, and failed
  for (std::size_t i = 1; i < batches.size(); ++i) ASSERT_TRUE(store->ingest(batches[i]).ok());
  ASSERT_TRUE(accept_poisoned_records(db.get()).ok());
  ASSERT_TRUE(store->apply_inbox().ok());
  EXPECT_EQ(answers(*store), answers(*reference));
  store.reset();  // deletes the applied rows from the inbox file
  EXPECT_EQ(inbox_records(path), 0);
}

// In a child process: acknowledges every batch, then dies at once, by SIGKILL: no
// destructor applies the inbox, and the applier thread waits kApplyDelay (or
// kApplyRecords) for more records first.
void acknowledge_then_kill(const std::string& path, const std::vector<IngestBatch>& batches) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = SqliteStore::open(path, store_options());
    if (!store) _exit(2);
    for (const auto& b : batches)
      if (!(*store)->ingest(b)) _exit(3);
    kill(getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
}

TEST(Inbox, WhatAProcessKilledBeforeApplyingAcknowledgedIsAppliedAtTheNextOpen) {
  test::TempDir dir;
  const auto batches = make_batches(300, 40);
  const std::string path = dir.file("killed.db");
  ASSERT_NO_FATAL_FAILURE(acknowledge_then_kill(path, batches));
  EXPECT_GT(inbox_records(path), 0);

  auto reference = reference_store(dir, batches);
  auto reopened = open_store_at(path);
  EXPECT_EQ(inbox_records(path), 0);
  EXPECT_EQ(answers(*reopened), answers(*reference));
  // The keys were acknowledged, so they replay; the records are duplicates now.
  expect_resend_is_harmless(*reopened, batches[5]);
}

// Batches sent as gzip are kept in the inbox as their body and which records were new;
// read back from the file they give the records, derived again, that were acknowledged.
TEST(Inbox, GzipBatchesReadBackFromTheFileGiveTheAnswersOfTheirRecords) {
  test::TempDir dir;
  const auto batches = make_batches(300, 40);
  auto reference = reference_store(dir, batches);
  std::vector<IngestBatch> sent;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    sent.push_back(i % 2 ? as_sent_gzip(batches[i]) : batches[i]);
    if (i % 3 == 1) {  // and once more with the next batch's records: half of it duplicates
      IngestBatch overlap = batches[i];
      overlap.idempotency_key += "-and-next";
      if (i + 1 < batches.size())
        overlap.records.insert(overlap.records.end(), batches[i + 1].records.begin(), batches[i + 1].records.end());
      sent.push_back(as_sent_gzip(overlap));
    }
  }
  const std::string path = dir.file("gzip-rows.db");
  ASSERT_NO_FATAL_FAILURE(acknowledge_then_kill(path, sent));
  {
    auto db = open_database(path + "-inbox", true);
    Statement forms(db->get(), "SELECT count(*) FROM inbox WHERE substr(body, 1, 1) = x'02'");
    ASSERT_TRUE(forms.step());
    EXPECT_GT(forms.int64(0), 0);
  }
  auto reopened = open_store_at(path);
  EXPECT_EQ(inbox_records(path), 0);
  EXPECT_EQ(answers(*reopened), answers(*reference));
  Statement damaged(open_database(path, true)->get(), "SELECT count(*) FROM inbox_damaged");
  ASSERT_TRUE(damaged.step());
  EXPECT_EQ(damaged.int64(0), 0);
}

TEST(Inbox, RowsAppliedButNotYetDeletedAreNeverAppliedAgain) {
  test::TempDir dir;
  const auto batches = make_batches(300, 40);
  auto reference = reference_store(dir, batches);

  // The inbox file refuses (silently) to delete its rows: as if each process died right
  // after committing what it applied to the store's file, before deleting the rows.
  const std::string path = dir.file("undeleted.db");
  auto store = open_store_at(path);
  {
    auto db = open_database(path + "-inbox", false);
    ASSERT_TRUE(exec_sql_status(db->get(), "CREATE TRIGGER keep BEFORE DELETE ON inbox BEGIN SELECT RAISE(IGNORE); END").ok());
  }
  int64_t accepted = 0;
  for (const auto& b : batches) {
    auto outcome = store->ingest(b);
    ASSERT_TRUE(outcome.ok()) << outcome.error();
    accepted += outcome->accepted;
  }
  EXPECT_EQ(answers(*store), answers(*reference));
  EXPECT_EQ(inbox_records(path), accepted);  // applied, still in the file
  EXPECT_EQ(store->stats()->inbox_records, 0);

  // Reopened (twice: the second open starts from what the first wrote), the rows are
  // skipped, not applied a second time.
  for (int round = 0; round < 2; ++round) {
    store.reset();
    store = open_store_at(path);
    EXPECT_EQ(store->stats()->inbox_records, 0);
    EXPECT_EQ(answers(*store), answers(*reference)) << "round " << round;
  }
  // And what arrives next is applied: a re-sent key replays, a re-sent record is a duplicate.
  expect_resend_is_harmless(*store, batches[3]);
  EXPECT_EQ(answers(*store), answers(*reference));
}

// An apply does not delete its rows itself (that would wait for the acknowledging lock
// and fsync once more): the next acknowledging transaction does. Nothing may keep them
// in the file for good.
TEST(Inbox, AppliedRowsLeaveTheInboxFileWithTheNextBatch) {
  test::TempDir dir;
  const auto batches = make_batches(200, 40);
  const std::string path = dir.file("deferred.db");
  auto store = open_store_at(path);
  int64_t accepted = 0;
  for (std::size_t i = 0; i + 1 < batches.size(); ++i) {
    auto outcome = store->ingest(batches[i]);
    ASSERT_TRUE(outcome.ok()) << outcome.error();
    accepted += outcome->accepted;
  }
  ASSERT_TRUE(store->stats().ok());  // applies the inbox
  EXPECT_EQ(store->stats()->inbox_records, 0);
  EXPECT_EQ(inbox_records(path), accepted);  // applied, not deleted yet

  auto last = store->ingest(batches.back());
  ASSERT_TRUE(last.ok()) << last.error();
  EXPECT_EQ(inbox_records(path), last->accepted);  // only the batch that waits
  store.reset();
  EXPECT_EQ(inbox_records(path), 0);  // closing applies it and deletes its row
}

TEST(Inbox, AStoreFromBeforeTheInboxFileKeepsItsWaitingRecordsAndKeys) {
  test::TempDir dir;
  const auto batches = make_batches(200, 40);
  auto reference = reference_store(dir, batches);

  // A store file of schema_version 2: the inbox and the Idempotency-Keys inside it,
  // every batch acknowledged, none applied yet.
  const std::string path = dir.file("legacy.db");
  open_store_at(path).reset();
  for (const char* suffix : {"-inbox", "-inbox-wal", "-inbox-shm"}) std::filesystem::remove(path + suffix);
  {
    auto db = open_database(path, false);
    ASSERT_TRUE(exec_sql_status(db->get(),
                                "CREATE TABLE inbox(id INTEGER PRIMARY KEY, records INTEGER NOT NULL, body BLOB NOT NULL);"
                                "CREATE TABLE batches(idempotency_key TEXT PRIMARY KEY, accepted INTEGER NOT NULL, "
                                "duplicates INTEGER NOT NULL, received_at INTEGER NOT NULL) WITHOUT ROWID;"
                                "UPDATE meta SET value = 2 WHERE key = 'schema_version'; DELETE FROM meta WHERE key = 'applied_inbox_id'")
                    .ok());
    Statement row(db->get(), "INSERT INTO inbox (records, body) VALUES (?1, ?2)");
    Statement key(db->get(), "INSERT INTO batches VALUES (?1, ?2, 0, 0)");
    for (const auto& b : batches) {
      std::vector<const IngestRecord*> records;
      for (const auto& in : b.records) records.push_back(&in);
      std::string body;
      encode_inbox_records(records, body);
      const auto n = static_cast<int64_t>(records.size());
      ASSERT_TRUE(row.bind(1, n).bind_blob(2, body.data(), body.size()).run_and_reset().ok());
      ASSERT_TRUE(key.bind(1, b.idempotency_key).bind(2, n).run_and_reset().ok());
    }
  }

  auto store = open_store_at(path);
  EXPECT_EQ(answers(*store), answers(*reference));
  EXPECT_EQ(inbox_records(path), 0);
  expect_resend_is_harmless(*store, batches[7]);
  auto db = open_database(path, true);
  Statement legacy_tables(db->get(), "SELECT count(*) FROM sqlite_master WHERE name IN ('inbox', 'batches')");
  ASSERT_TRUE(legacy_tables.step());
  EXPECT_EQ(legacy_tables.int64(0), 0);
  Statement version(db->get(), "SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.int64(0), kSchemaVersion);
}

// An update applied after later ones of its session (its edge re-sent it late): the
// applier replaces the session's contribution from the chain with the late point in it,
// so the answers are those of the updates applied in order.
TEST(Inbox, ALateUpdateAppliedAfterItsSuccessorsCountsAsInOrder) {
  test::TempDir dir;
  auto batches = make_batches(200, 40);
  // Bytes that do not grow evenly: where the late point lies changes every minute's share.
  for (IngestBatch& b : batches)
    for (IngestRecord& in : b.records)
      if (in.record.seq == 1) in.record.bytes_out += 700'000;
  auto reference = reference_store(dir, batches);
  IngestBatch late;
  std::vector<IngestBatch> early = batches;
  for (IngestBatch& b : early)
    std::erase_if(b.records, [&](const IngestRecord& in) {
      const bool held_back = in.record.seq == 1 && in.record.state == SessionState::Open;
      if (held_back) late.records.push_back(in);
      return held_back;
    });
  ASSERT_GT(late.records.size(), 20u);
  auto store = open_store_at(dir.file("late.db"));
  for (const auto& b : early) ASSERT_TRUE(store->ingest(b).ok());
  ASSERT_TRUE(store->stats().ok());  // applied: every seq 2 before its seq 1
  auto outcome = store->ingest(late);
  ASSERT_TRUE(outcome.ok()) << outcome.error();
  EXPECT_EQ(outcome->accepted, static_cast<int64_t>(late.records.size()));
  EXPECT_EQ(answers(*store), answers(*reference));
  IngestBatch again = late;
  again.idempotency_key = "late-again";
  auto duplicates = store->ingest(again);  // found in the chains: changes nothing
  ASSERT_TRUE(duplicates.ok()) << duplicates.error();
  EXPECT_EQ(duplicates->duplicates, static_cast<int64_t>(late.records.size()));
  EXPECT_EQ(answers(*store), answers(*reference));
}

// Updates applied after their successors, their sessions still open (their batches
// were acknowledged after later ones): the applier cuts the interval between the two
// points it knows a late one falls between, without reading the chain, and the answers
// are those of the updates applied in order. Late updates just below the latest, one
// after another, among the points before it, before a session's first point, and
// further back than the points it keeps (the chain decides).
TEST(Inbox, LateUpdatesOfCachedSessionsCountAsInOrder) {
  test::TempDir dir;
  auto batches = make_batches(200, 40, 12);
  std::map<std::string, int64_t> highest;  // seq per session, once the closing updates are gone
  for (IngestBatch& b : batches) {
    std::erase_if(b.records, [](const IngestRecord& in) { return in.record.state == SessionState::Closed; });
    for (IngestRecord& in : b.records) {
      if (in.record.seq % 2 == 1) in.record.bytes_out += 700'000;  // uneven: every minute's share moves
      highest[in.record.session_id] = std::max(highest[in.record.session_id], in.record.seq);
    }
  }
  auto reference = reference_store(dir, batches);
  IngestBatch late;
  late.idempotency_key = "late";
  std::vector<IngestBatch> early = batches;
  std::size_t before_first = 0;
  for (IngestBatch& b : early)
    std::erase_if(b.records, [&](const IngestRecord& in) {
      const int64_t behind = highest[in.record.session_id] - in.record.seq;
      const bool held_back = behind == 1 || behind == 2 || behind == 4 || behind == 7;
      if (held_back) late.records.push_back(in), before_first += in.record.seq == 0;
      return held_back;
    });
  ASSERT_GT(before_first, 10u);
  ASSERT_GT(late.records.size() - before_first, 100u);
  auto store = open_store_at(dir.file("late.db"));
  for (const auto& b : early) ASSERT_TRUE(store->ingest(b).ok());
  ASSERT_TRUE(store->stats().ok());  // applied: every session's latest before the one below it
  auto outcome = store->ingest(late);
  ASSERT_TRUE(outcome.ok()) << outcome.error();
  EXPECT_EQ(outcome->accepted, static_cast<int64_t>(late.records.size()));
  EXPECT_EQ(answers(*store), answers(*reference));
  expect_resend_is_harmless(*store, late);
  // Once more after a restart: the sessions are read from their rows, the chains decide.
  store.reset();
  auto reopened = open_store_at(dir.file("late.db"));
  EXPECT_EQ(answers(*reopened), answers(*reference));
}

// A session whose dimensions change between updates (its country with a new address,
// its stream) counts, bytes and all, under those of its latest update: what the rollups
// say is the sum over sessions of their latest records, grouped by their dimensions.
TEST(Inbox, ASessionWhoseDimensionsChangeCountsUnderItsLatestOnes) {
  test::TempDir dir;
  auto batches = make_batches(300, 40);
  for (IngestBatch& b : batches)
    for (IngestRecord& in : b.records) {
      const int session = std::stoi(in.record.session_id.substr(2));
      if (session % 3 == 0 && in.record.seq >= 1) in.country = "FR";
      if (session % 3 == 1 && in.record.seq >= 2) in.record.stream = "live/moved";
    }
  std::map<std::string, const IngestRecord*> latest;  // by session
  for (const IngestBatch& b : batches)
    for (const IngestRecord& in : b.records)
      if (auto& l = latest[in.record.session_id]; !l || in.record.seq > l->record.seq) l = &in;
  std::map<std::string, std::pair<int64_t, int64_t>> by_country, by_stream;  // sessions, bytes_out
  for (const auto& [id, in] : latest) {
    const auto bytes_out = static_cast<int64_t>(in->record.bytes_out);
    by_country[in->country].first += 1, by_country[in->country].second += bytes_out;
    by_stream[in->record.stream].first += 1, by_stream[in->record.stream].second += bytes_out;
  }
  ASSERT_GT(by_country["FR"].first, 50);
  ASSERT_GT(by_stream["live/moved"].first, 30);

  auto store = open_store_at(dir.file("changed.db"));
  for (const auto& b : batches) ASSERT_TRUE(store->ingest(b).ok());
  ReportApi api(*store);
  const std::string range = "&from=" + std::to_string(kStart - 3'600'000) + "&to=" + std::to_string(kStart + 7'200'000);
  for (const auto& [dimension, expected] : {std::pair{std::string("country"), &by_country}, std::pair{std::string("stream"), &by_stream}}) {
    const ApiResponse r = api.events("dimensions=" + dimension + "&metrics=sessions,bytes_out" + range, kStart + 7'200'000);
    ASSERT_EQ(r.status, 200) << r.body;
    std::map<std::string, std::pair<int64_t, int64_t>> answered;
    const auto body = nlohmann::json::parse(r.body);
    for (const auto& row : body["data"])
      answered[row["dimensions"][dimension].get<std::string>()] = {row["totals"]["sessions"].get<int64_t>(),
                                                                    row["totals"]["bytes_out"].get<int64_t>()};
    EXPECT_EQ(answered, *expected) << dimension;
  }
}

// The applier plans a transaction while the one before is written (apply_plan.hpp):
// each batch here is planned on top of the plan still being committed, with updates
// that arrive late by one to five batches (chain reads that must merge the points not
// committed yet), sessions closed in one plan and updated late in the next (they stay
// cached until no plan in flight holds them) and changing dimensions. The answers are
// those of the same records applied in one go.
TEST(Inbox, PlansMadeWhileTheOneBeforeIsWrittenGiveTheAnswersOfOneApply) {
  test::TempDir dir;
  auto in_order = make_batches(150, 30, 12);
  std::mt19937_64 rng(11);
  std::vector<IngestBatch> batches(in_order.size() + 5);
  int64_t delayed = 0;
  for (std::size_t i = 0; i < in_order.size(); ++i)
    for (IngestRecord& in : in_order[i].records) {
      const int session = std::stoi(in.record.session_id.substr(2));
      if (session % 4 == 0 && in.record.seq >= 3) in.country = "FR";
      if (in.record.seq % 2 == 1) in.record.bytes_out += 700'000;  // uneven: every minute's share moves
      const uint64_t roll = rng() % 10;
      const std::size_t delay = roll < 6 ? 0 : roll < 8 ? 1 : roll < 9 ? 2 : 5;
      delayed += delay > 0;
      batches[i + delay].records.push_back(in);
    }
  ASSERT_GT(delayed, 300);
  std::erase_if(batches, [](const IngestBatch& b) { return b.records.empty(); });
  auto reference = reference_store(dir, in_order);

  auto store = open_store_at(dir.file("pipelined.db"));
  for (const IngestBatch& b : batches) {
    ASSERT_TRUE(store->ingest(b).ok());
    ASSERT_TRUE(store->apply_inbox(/*drain=*/false).ok());  // the last plan may still be committing
  }
  EXPECT_EQ(answers(*store), answers(*reference));
  store.reset();
  auto reopened = open_store_at(dir.file("pipelined.db"));
  EXPECT_EQ(answers(*reopened), answers(*reference));
}

// A commit that fails while the next plan is made on top of it: both are dropped (the
// cache, the ids given, the records taken), the rows are read again from the file, and
// once the cause is gone everything is applied exactly once, without a restart.
TEST(Inbox, AFailedCommitDropsThePlanMadeOnTopOfItAndBothAreAppliedAgain) {
  test::TempDir dir;
  auto batches = make_batches(200, 40, 8);
  add_poisoned_record(batches[3]);
  for (IngestBatch& b : batches)
    for (IngestRecord& in : b.records)
      if (std::stoi(in.record.session_id.substr(2)) % 5 == 0) in.record.stream = "live/new-" + in.record.session_id;
  auto reference = reference_store(dir, batches);

  const std::string path = dir.file("dropped.db");
  auto store = open_store_at(path);
  SqliteDb db = connection_refusing_poisoned_records(path);
  int failed = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    ASSERT_TRUE(store->ingest(batches[i]).ok());
    failed += !store->apply_inbox(/*drain=*/i % 3 == 2).ok();
    if (i == 6) {
      ASSERT_TRUE(accept_poisoned_records(db.get()).ok());
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_EQ(answers(*store), answers(*reference));
  store.reset();
  EXPECT_EQ(inbox_records(path), 0);
}

// Admission judges each record against everything admitted before it, whatever the
// order: next updates, gaps, updates arriving before earlier ones, re-sends of records
// applied long ago (sessions with more seqs than admission keeps), repeats inside a
// batch, batches refused after admitting (undone), applies in between and a restart.
// The verdicts and the stored update chains are those of a plain set of seen seqs.
TEST(Admission, EveryVerdictIsThatOfTheSetOfSeqsSeenWhateverTheOrder) {
  test::TempDir dir;
  const std::string path = dir.file("admission.db");
  auto store = open_store_at(path);
  std::mt19937_64 rng(11);
  constexpr int kSessions = 6, kBatches = 700;
  std::set<std::pair<int, int64_t>> seen;  // the truth
  std::vector<int64_t> highest(kSessions, -1);
  // Some batches are refused by the inbox after their records were admitted.
  std::string refused_keys;
  for (int b = 0; b < kBatches; b += 9) refused_keys += (refused_keys.empty() ? "'k" : ", 'k") + std::to_string(b) + "'";
  {
    auto db = open_database(path + "-inbox", false);
    ASSERT_TRUE(exec_sql_status(db->get(), ("CREATE TRIGGER refuse BEFORE INSERT ON batches WHEN NEW.idempotency_key "
                                            "IN (" + refused_keys + ") BEGIN SELECT RAISE(ABORT, 'refused'); END").c_str())
                    .ok());
  }
  int64_t late_accepted = 0, old_resends_refused = 0;
  for (int b = 0; b < kBatches; ++b) {
    IngestBatch batch;
    batch.idempotency_key = "k" + std::to_string(b);
    std::vector<std::pair<int, int64_t>> points;
    for (int n = 1 + static_cast<int>(rng() % 20); n > 0; --n) {
      int session = static_cast<int>(rng() % kSessions);
      int64_t seq = 0;
      switch (rng() % 10) {
        case 0: case 1: case 2: case 3: seq = highest[session] + 1 + static_cast<int64_t>(rng() % 3); break;  // next, gaps
        case 4: case 5: seq = highest[session] + 2 + static_cast<int64_t>(rng() % 6); break;  // ahead of what is missing
        case 6: case 7: seq = static_cast<int64_t>(rng() % static_cast<uint64_t>(highest[session] + 2)); break;  // any earlier
        case 8: seq = std::max<int64_t>(0, highest[session] - static_cast<int64_t>(rng() % 4)); break;  // a recent one again
        default:
          if (!points.empty()) std::tie(session, seq) = points[rng() % points.size()];  // repeated in the batch
      }
      if (seq > highest[session]) highest[session] = seq;
      IngestRecord in;
      in.record.server_id = "edge";
      in.record.session_id = "s-" + std::to_string(session);
      in.record.host = "edge.example.net";
      in.record.type = SessionType::Play;
      in.record.protocol = Protocol::Hls;
      in.record.stream = "live/a";
      in.record.client_ip = "10.0.0.1";
      in.record.started_at = kStart;
      in.record.seq = seq;
      in.record.updated_at = kStart + (seq + 1) * 1'000;
      in.record.bytes_out = static_cast<uint64_t>(seq) * 1'000;
      derive(in);
      batch.records.push_back(std::move(in));
      points.emplace_back(session, seq);
    }
    const bool refused = b % 9 == 0;
    int64_t expect_new = 0;
    std::set<std::pair<int, int64_t>> in_batch;
    for (const auto& p : points) {
      const bool fresh = !seen.contains(p) && in_batch.insert(p).second;
      expect_new += fresh;
      if (fresh && p.second < highest[p.first] - 20) ++late_accepted;
      if (!fresh && !in_batch.contains(p) && p.second < highest[p.first] - 20) ++old_resends_refused;
    }
    auto outcome = store->ingest(std::move(batch));
    if (refused) {
      EXPECT_FALSE(outcome.ok()) << "batch " << b;
    } else {
      ASSERT_TRUE(outcome.ok()) << "batch " << b << ": " << outcome.error();
      EXPECT_EQ(outcome->accepted, expect_new) << "batch " << b;
      EXPECT_EQ(outcome->duplicates, static_cast<int64_t>(points.size()) - expect_new) << "batch " << b;
      seen.insert(in_batch.begin(), in_batch.end());
    }
    if (rng() % 4 == 0) {
      ASSERT_TRUE(store->apply_inbox().ok());
    }
    if (b == kBatches / 2) {  // a restart: admission starts from the store alone
      store.reset();
      store = open_store_at(path);
    }
  }
  // The cases that need the chain happened, many times.
  EXPECT_GT(late_accepted, 50);
  EXPECT_GT(old_resends_refused, 50);

  ASSERT_TRUE(store->apply_inbox().ok());
  auto db = open_database(path, true);
  Statement find(db->get(), "SELECT id FROM sessions WHERE session_id = ?1");
  Statement select(db->get(), kReadChainSql);
  for (int session = 0; session < kSessions; ++session) {
    ASSERT_TRUE(find.bind(1, "s-" + std::to_string(session)).step());
    const int64_t id = find.int64(0);
    find.reset();
    std::vector<UpdatePoint> chain;
    ASSERT_TRUE(read_chain(select, id, chain).ok());
    std::vector<int64_t> stored, expected;
    for (const UpdatePoint& p : chain) stored.push_back(p.seq);
    for (const auto& [s, seq] : seen)
      if (s == session) expected.push_back(seq);
    EXPECT_EQ(stored, expected) << "session " << session;
  }
}

// A late update's point is a row of its own, after the row that holds its neighbours:
// the chain comes back in seq order all the same.
TEST(UpdateChain, ReadChainMergesRowsInSeqOrder) {
  test::TempDir dir;
  auto db = open_database(dir.file("chain.db"), false);
  ASSERT_TRUE(db.ok()) << db.error();
  ASSERT_TRUE(exec_sql_status(db->get(), "CREATE TABLE updates(session INTEGER NOT NULL, seq INTEGER NOT NULL, "
                                         "points BLOB NOT NULL, PRIMARY KEY(session, seq)) WITHOUT ROWID").ok());
  Statement insert(db->get(), kInsertChainRowSql);
  std::string row;
  auto add = [&](int64_t session, std::vector<UpdatePoint> points) {
    ASSERT_TRUE(write_chain_row(insert, session, points, row).ok());
  };
  add(7, {{0, 100, 1, 2}, {1, 200, 3, 4}, {3, 400, 7, 8}, {4, 500, 9, 10}});
  add(7, {{2, 300, 5, 6}});   // late
  add(7, {{5, 600, 11, 12}});  // the next apply
  add(8, {{0, 1, 1, 1}});      // another session
  Statement select(db->get(), kReadChainSql);
  std::vector<UpdatePoint> chain{{99, 0, 0, 0}};  // replaced, not appended to
  ASSERT_TRUE(read_chain(select, 7, chain).ok());
  ASSERT_EQ(chain.size(), 6u);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(chain[i].seq, i);
    EXPECT_EQ(chain[i].t, 100 * (i + 1));
    EXPECT_EQ(chain[i].bytes_out, 2 * (i + 1));
  }
  ASSERT_TRUE(read_chain(select, 9, chain).ok());
  EXPECT_TRUE(chain.empty());
}

// A store of schema_version 3 kept a chain row per point: opening it packs them, and it
// answers as before.
TEST(StoreUpgrade, ChainsOfARowPerPointArePackedAtOpen) {
  test::TempDir dir;
  const auto batches = make_batches(200, 40);
  auto reference = reference_store(dir, batches);
  const std::string path = dir.file("v3.db");
  {
    auto store = open_store_at(path);
    for (std::size_t i = 0; i + 1 < batches.size(); ++i) ASSERT_TRUE(store->ingest(batches[i]).ok());
  }
  // Unpack the chains into the old layout, a row per point.
  int64_t points = 0;
  {
    auto db = open_database(path, false);
    ASSERT_TRUE(exec_sql_status(db->get(), "BEGIN; CREATE TABLE old_updates(session INTEGER NOT NULL, seq INTEGER NOT NULL, "
                                           "t INTEGER NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, "
                                           "PRIMARY KEY(session, seq)) WITHOUT ROWID").ok());
    Statement rows(db->get(), "SELECT session, points FROM updates");
    Statement insert(db->get(), "INSERT INTO old_updates VALUES (?1, ?2, ?3, ?4, ?5)");
    while (rows.step()) {
      std::vector<UpdatePoint> chain;
      ASSERT_TRUE(decode_chain_points(rows.blob(1), chain).ok());
      for (const UpdatePoint& p : chain) {
        insert.bind(1, rows.int64(0)).bind(2, p.seq).bind(3, p.t).bind(4, p.bytes_in).bind(5, p.bytes_out);
        ASSERT_TRUE(insert.run_and_reset().ok());
        ++points;
      }
    }
    rows.reset();
    ASSERT_TRUE(exec_sql_status(db->get(), "DROP TABLE updates; ALTER TABLE old_updates RENAME TO updates; "
                                           "UPDATE meta SET value = 3 WHERE key = 'schema_version'; COMMIT").ok());
  }
  ASSERT_GT(points, 500);

  auto store = open_store_at(path);
  auto db = open_database(path, true);
  Statement packed(db->get(), "SELECT session, points FROM updates");
  std::set<int64_t> sessions;
  int64_t rows = 0, packed_points = 0;
  while (packed.step()) {
    ++rows, sessions.insert(packed.int64(0));
    std::vector<UpdatePoint> chain;
    ASSERT_TRUE(decode_chain_points(packed.blob(1), chain).ok());
    packed_points += static_cast<int64_t>(chain.size());
  }
  packed.reset();
  EXPECT_EQ(rows, static_cast<int64_t>(sessions.size()));  // a row per session
  EXPECT_EQ(packed_points, points);
  ASSERT_TRUE(store->ingest(batches.back()).ok());  // applied on top of the packed chains
  EXPECT_EQ(answers(*store), answers(*reference));
  expect_resend_is_harmless(*store, batches[4]);  // duplicates are found in packed chains
  EXPECT_EQ(answers(*store), answers(*reference));
  Statement version(db->get(), "SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.int64(0), kSchemaVersion);
}

}  // namespace
}  // namespace streamtally::collector
