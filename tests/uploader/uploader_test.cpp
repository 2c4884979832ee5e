// The Uploader in-process against a real HTTP server on 127.0.0.1 (TestReceiver),
// with a real SQLite spool in a temp dir. Ground truth is what the test appended;
// the receiver decodes every request independently of the uploader.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "record_factory.hpp"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"
#include "streamtally/uploader.hpp"
#include "streamtally/uuid.hpp"
#include "test_receiver.hpp"
#include "test_support.hpp"

namespace streamtally::test {
namespace {

using namespace std::chrono_literals;

class UploaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SpoolOptions options;
    options.path = dir_.file("spool.db");
    auto spool = Spool::open(options);
    ASSERT_TRUE(spool.ok()) << spool.error();
    spool_ = std::move(spool).value();
  }

  // Fast settings for tests: short backoff, short timeouts.
  static UploaderOptions fast_options(const std::string& url) {
    UploaderOptions o;
    o.collector_url = url;
    o.token = "ingest-secret";
    o.batch_size = 100;
    o.flush_interval = 200ms;
    o.backoff_base = 50ms;
    o.backoff_cap = 400ms;
    o.connect_timeout = 1000ms;
    o.request_timeout = 3000ms;
    return o;
  }

  std::vector<SessionRecord> append(std::size_t n, std::size_t first = 0) {
    auto records = varied_records(n, first);
    auto result = spool_->append(records);
    EXPECT_TRUE(result.ok()) << result.error();
    if (result.ok()) {
      EXPECT_EQ(result->appended, n);
    }
    return records;
  }

  uint64_t pending() {
    auto stats = spool_->stats();
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? stats->pending : ~0ull;
  }

  static void expect_all_acknowledged(const TestReceiver& receiver, const std::vector<SessionRecord>& records) {
    const auto acked = receiver.acknowledged();
    std::size_t missing = 0;
    for (const auto& r : records) missing += acked.count(key_of(r)) ? 0 : 1;
    EXPECT_EQ(missing, 0u) << "of " << records.size() << " records";
  }

  TempDir dir_;
  std::shared_ptr<Spool> spool_;
};

TEST_F(UploaderTest, RoundTripOfEveryFieldWithHeadersAndKeepAlive) {
  TestReceiver receiver;
  ASSERT_TRUE(receiver.listening());
  const auto records = append(1234);
  Uploader uploader(spool_, fast_options(receiver.url()));
  uploader.start();
  ASSERT_TRUE(uploader.drain(30s));
  uploader.stop(1s);

  // Every record arrived exactly as appended (decoded by the receiver, compared with
  // the originals field by field).
  std::map<RecordKey, SessionRecord> received;
  const auto requests = receiver.requests();
  std::set<std::string> keys;
  std::set<int> connections;
  uint64_t wire_bytes = 0;
  for (const auto& request : requests) {
    EXPECT_EQ(request.decode_error, "");
    EXPECT_EQ(request.answered_status, 200);
    EXPECT_EQ(request.authorization, "Bearer ingest-secret");
    EXPECT_EQ(request.content_type, "application/x-ndjson");
    EXPECT_EQ(request.content_encoding, "gzip");
    EXPECT_TRUE(looks_like_uuid(request.idempotency_key)) << request.idempotency_key;
    EXPECT_LE(request.records.size(), 100u);
    keys.insert(request.idempotency_key);
    connections.insert(request.remote_port);
    wire_bytes += request.wire_bytes;
    for (const auto& record : request.records) EXPECT_TRUE(received.emplace(key_of(record), record).second);
  }
  ASSERT_EQ(received.size(), records.size());
  for (const auto& record : records) {
    auto it = received.find(key_of(record));
    ASSERT_NE(it, received.end());
    EXPECT_EQ(it->second, record);
  }
  EXPECT_EQ(requests.size(), 13u);  // ceil(1234 / 100)
  EXPECT_EQ(keys.size(), requests.size()) << "one Idempotency-Key per batch";
  EXPECT_LE(connections.size(), UploaderOptions{}.max_in_flight)
      << "kept-alive connections, one per request in flight, for all batches";
  EXPECT_EQ(pending(), 0u);

  const auto c = uploader.counters();
  EXPECT_EQ(c.batches_sent, requests.size());
  EXPECT_EQ(c.batches_acked, requests.size());
  EXPECT_EQ(c.batches_retried, 0u);
  EXPECT_EQ(c.batches_dead_lettered, 0u);
  EXPECT_EQ(c.records_uploaded, records.size());
  EXPECT_EQ(c.bytes_uploaded, wire_bytes);
}

// Two requests are on the way at once (one per connection); when one fails, the other
// still counts, and the failed batch alone is retried under its own key.
TEST_F(UploaderTest, TwoRequestsOnTheWayAndAFailedOneIsRetriedWithItsKey) {
  TestReceiver::Options receiver_options;
  receiver_options.hold = 150ms;  // keeps each request open long enough to see both
  TestReceiver receiver(receiver_options);
  receiver.script({{503, "", 0ms, ""}});
  const auto records = append(600);
  Uploader uploader(spool_, fast_options(receiver.url()));
  uploader.start();
  uploader.nudge();
  EXPECT_TRUE(wait_until([&] { return receiver.in_flight() == 2; }, 10s)) << "two requests on the way at once";
  ASSERT_TRUE(uploader.drain(30s));
  uploader.stop(1s);

  expect_all_acknowledged(receiver, records);
  EXPECT_EQ(receiver.concurrent_duplicates(), 0u) << "a record was in two requests on the way at once";
  const auto requests = receiver.requests();
  ASSERT_GE(requests.size(), 7u);  // 6 batches and one retry
  ASSERT_EQ(requests[0].answered_status, 503);
  std::size_t retried = 0;
  for (const auto& request : requests)
    retried += request.idempotency_key == requests[0].idempotency_key && request.answered_status == 200;
  EXPECT_EQ(retried, 1u) << "the failed batch is sent again with its Idempotency-Key";
  EXPECT_EQ(uploader.counters().batches_retried, 1u);
  EXPECT_EQ(pending(), 0u);
}

TEST_F(UploaderTest, ServiceUnavailableWithRetryAfterThenDeliveredOnceWithTheSameKey) {
  TestReceiver receiver;
  receiver.script({{503, "1", 0ms, ""}});
  const auto records = append(40);
  auto options = fast_options(receiver.url());
  options.backoff_cap = 2s;  // Retry-After is honoured up to the cap
  Uploader uploader(spool_, options);
  uploader.start();
  ASSERT_TRUE(uploader.drain(20s));
  uploader.stop(1s);

  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].answered_status, 503);
  EXPECT_EQ(requests[1].answered_status, 200);
  EXPECT_EQ(requests[0].idempotency_key, requests[1].idempotency_key);
  EXPECT_EQ(requests[0].records, requests[1].records);
  // Retry-After: 1 is a floor under the 50 ms backoff window.
  EXPECT_GE(requests[1].arrived_at - requests[0].arrived_at, 1000ms);
  const auto acked = receiver.acknowledged();
  EXPECT_EQ(acked.size(), records.size());
  for (const auto& [key, times] : acked) EXPECT_EQ(times, 1);
  expect_all_acknowledged(receiver, records);
  const auto c = uploader.counters();
  EXPECT_EQ(c.batches_sent, 2u);
  EXPECT_EQ(c.batches_retried, 1u);
  EXPECT_EQ(c.batches_acked, 1u);
  EXPECT_EQ(c.records_uploaded, records.size());
}

TEST_F(UploaderTest, BadRequestMovesTheBatchToDeadLettersAndTheRestIsDelivered) {
  TestReceiver receiver;
  receiver.script({{400, "", 0ms, R"({"error":"stream: too long","line":3})"}});
  const auto records = append(300);
  Uploader uploader(spool_, fast_options(receiver.url()));
  uploader.start();
  ASSERT_TRUE(uploader.drain(20s));

  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  ASSERT_EQ(requests[0].answered_status, 400);
  auto letters = spool_->dead_letters();
  ASSERT_TRUE(letters.ok()) << letters.error();
  ASSERT_EQ(letters->size(), requests[0].records.size());
  std::set<RecordKey> rejected, dead;
  for (const auto& r : requests[0].records) rejected.insert(key_of(r));
  for (const auto& letter : *letters) {
    EXPECT_EQ(letter.http_status, 400);
    EXPECT_EQ(letter.batch_id, requests[0].idempotency_key);
    EXPECT_NE(letter.reason.find("stream: too long"), std::string::npos) << letter.reason;
    auto record = decode_record(letter.line);
    ASSERT_TRUE(record.ok());
    dead.insert(key_of(*record));
  }
  EXPECT_EQ(dead, rejected);
  EXPECT_EQ(receiver.acknowledged().size(), records.size() - rejected.size());
  EXPECT_EQ(pending(), 0u);
  EXPECT_EQ(uploader.counters().batches_dead_lettered, 1u);

  // The operator fixes the collector and requeues: now everything is delivered.
  auto requeued = spool_->requeue_dead_letters();
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(*requeued, rejected.size());
  uploader.nudge();
  ASSERT_TRUE(uploader.drain(20s));
  uploader.stop(1s);
  expect_all_acknowledged(receiver, records);
}

TEST_F(UploaderTest, WrongTokenBacksOffInsteadOfSpinning) {
  TestReceiver receiver;
  receiver.set_default_response({401, "", 0ms, R"({"error":"bad token"})"});
  const auto records = append(50);
  auto options = fast_options(receiver.url());
  options.backoff_base = 100ms;
  options.backoff_cap = 400ms;
  Uploader uploader(spool_, options);
  uploader.start();
  uploader.nudge();
  EXPECT_FALSE(uploader.drain(2s)) << "nothing may be acknowledged with a wrong token";
  // A spinning client would have sent thousands of requests in 2 s; with a
  // 100..400 ms full-jitter window it sends about a dozen.
  const auto attempts = receiver.request_count();
  EXPECT_GE(attempts, 2u);
  EXPECT_LE(attempts, 60u);
  EXPECT_EQ(pending(), records.size());
  EXPECT_EQ(uploader.counters().batches_acked, 0u);
  const auto retried = uploader.counters().batches_retried;  // a request may be in flight
  EXPECT_LE(retried, attempts);
  EXPECT_GE(retried + 1, attempts);

  receiver.set_default_response({});  // the operator fixed the token
  ASSERT_TRUE(uploader.drain(10s));
  uploader.stop(1s);
  expect_all_acknowledged(receiver, records);
}

TEST_F(UploaderTest, PayloadTooLargeSplitsTheBatchIntoHalves) {
  TestReceiver::Options ro;
  ro.max_records_per_request = 30;
  TestReceiver receiver(ro);
  const auto records = append(250);
  Uploader uploader(spool_, fast_options(receiver.url()));
  uploader.start();
  ASSERT_TRUE(uploader.drain(20s));
  uploader.stop(1s);

  std::set<std::string> delivered_keys;
  std::size_t too_large = 0;
  for (const auto& request : receiver.requests()) {
    if (request.answered_status == 413) {
      ++too_large;
      EXPECT_GT(request.records.size(), 30u);
    } else {
      EXPECT_EQ(request.answered_status, 200);
      EXPECT_LE(request.records.size(), 30u);
      EXPECT_TRUE(looks_like_uuid(request.idempotency_key));
      EXPECT_TRUE(delivered_keys.insert(request.idempotency_key).second) << "split keys are distinct";
    }
  }
  // Batches 100, 100, 50: each 100 is refused, then its two 50s, whose 25s pass
  // (3 refusals each); the 50 is refused once: 3 + 3 + 1.
  EXPECT_EQ(too_large, 7u);
  const auto acked = receiver.acknowledged();
  EXPECT_EQ(acked.size(), records.size());
  for (const auto& [key, times] : acked) EXPECT_EQ(times, 1);
  EXPECT_EQ(pending(), 0u);
  EXPECT_EQ(uploader.counters().batches_acked, 3u);  // acks are per claimed batch
}

TEST_F(UploaderTest, ReceiverDownForAWhileThenUpGetsEverything) {
  const int port = free_port();
  const auto records = append(450);
  auto options = fast_options("http://127.0.0.1:" + std::to_string(port));
  Uploader uploader(spool_, options);
  uploader.start();
  uploader.nudge();
  ASSERT_TRUE(wait_until([&] { return uploader.counters().batches_retried >= 3; }, 20s))
      << "connection refused must be retried";
  EXPECT_EQ(pending(), records.size());

  TestReceiver::Options ro;
  ro.port = port;
  TestReceiver receiver(ro);
  ASSERT_TRUE(receiver.listening());
  ASSERT_TRUE(uploader.drain(20s));
  uploader.stop(1s);
  expect_all_acknowledged(receiver, records);
  EXPECT_EQ(pending(), 0u);
}

TEST_F(UploaderTest, SlowReceiverTimesOutAndTheBatchIsRetriedWithTheSameKey) {
  TestReceiver receiver;
  receiver.script({{200, "", 2500ms, ""}});  // answers only after the client gave up
  const auto records = append(60);
  auto options = fast_options(receiver.url());
  options.request_timeout = 500ms;
  Uploader uploader(spool_, options);
  uploader.start();
  ASSERT_TRUE(uploader.drain(20s));
  uploader.stop(1s);
  receiver.release_held();

  const auto requests = receiver.requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[0].idempotency_key, requests[1].idempotency_key);
  EXPECT_EQ(requests[0].records, requests[1].records);
  EXPECT_GE(uploader.counters().batches_retried, 1u);
  expect_all_acknowledged(receiver, records);
  EXPECT_EQ(pending(), 0u);
}

TEST_F(UploaderTest, StopIsBoundedAndLeavesUnsentRecordsInTheSpool) {
  TestReceiver receiver;
  receiver.set_default_response({503, "", 0ms, ""});
  const auto records = append(200);
  auto options = fast_options(receiver.url());
  options.backoff_base = 10s;  // the next try would be far beyond the stop timeout
  options.backoff_cap = 10s;
  Uploader uploader(spool_, options);
  uploader.start();
  uploader.nudge();
  ASSERT_TRUE(wait_until([&] { return uploader.counters().batches_retried >= 1; }, 10s));
  const auto before = std::chrono::steady_clock::now();
  uploader.stop(300ms);
  // Bounded: returns without waiting for the (up to 10 s) backoff.
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
  auto stats = spool_->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pending, records.size());
  EXPECT_EQ(stats->claimed, 0u) << "the held batch is released for the next start";

  // The next start sends it all.
  receiver.set_default_response({});
  Uploader again(spool_, fast_options(receiver.url()));
  again.start();
  ASSERT_TRUE(again.drain(20s));
  again.stop(1s);
  expect_all_acknowledged(receiver, records);
}

TEST_F(UploaderTest, StopAbortsARequestInFlightAtItsDeadline) {
  TestReceiver receiver;
  receiver.script({{200, "", 20s, ""}});  // would answer only after 20 s
  const auto records = append(30);
  auto options = fast_options(receiver.url());
  options.request_timeout = 30s;
  Uploader uploader(spool_, options);
  uploader.start();
  uploader.nudge();
  ASSERT_TRUE(wait_until([&] { return receiver.in_flight() == 1; }, 10s));
  const auto before = std::chrono::steady_clock::now();
  uploader.stop(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s) << "stop must not wait for the 30 s request timeout";
  receiver.release_held();
  auto stats = spool_->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->claimed, 0u) << "the aborted batch goes back to the spool at once";
  EXPECT_EQ(uploader.counters().batches_acked, 0u);
}

TEST_F(UploaderTest, PathsUnderTheBaseUrlAreKept) {
  TestReceiver receiver;
  const auto records = append(10);
  // An operator's base URL with a trailing slash: exactly one slash before v1/.
  Uploader uploader(spool_, fast_options(receiver.url() + "/"));
  uploader.start();
  ASSERT_TRUE(uploader.drain(10s));
  uploader.stop(1s);
  ASSERT_EQ(receiver.request_count(), 1u);
  EXPECT_EQ(receiver.requests()[0].target, "/v1/batches");
}

TEST_F(UploaderTest, AFullBatchGoesAtOnceAndAShortOneAfterTheFlushInterval) {
  TestReceiver receiver;
  auto options = fast_options(receiver.url());
  options.batch_size = 50;
  options.flush_interval = 1500ms;
  Uploader uploader(spool_, options);
  uploader.start();
  // Nothing yet; then a full batch and a nudge (what the spool writer does).
  const auto full = append(50);
  uploader.nudge();
  ASSERT_TRUE(wait_until([&] { return receiver.acknowledged().size() == 50; }, 10s));
  const auto appended_at = std::chrono::steady_clock::now();
  const auto short_batch = append(7, 50);
  uploader.nudge();
  ASSERT_TRUE(wait_until([&] { return receiver.acknowledged().size() == 57; }, 10s));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].records.size(), 50u);
  EXPECT_EQ(requests[1].records.size(), 7u);
  // The short batch waited for the flush interval (its records were not due before).
  EXPECT_GE(requests[1].arrived_at - appended_at, 1450ms);  // ms rounding of created_ms
  uploader.stop(1s);
}

}  // namespace
}  // namespace streamtally::test
