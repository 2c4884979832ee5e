// Unit tests of the uploader's pure parts: backoff windows, Retry-After, split keys,
// URLs, NDJSON bodies, durations of the CLI.
#include <gtest/gtest.h>

#include <set>

#include "backoff.hpp"
#include "batch_sender.hpp"
#include "commands.hpp"
#include "streamtally/uuid.hpp"

namespace streamtally::upload {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, WindowDoublesFromBaseUpToTheCapAndDelaysStayInside) {
  Backoff backoff(1000ms, 300000ms, 42);
  const int64_t expected_windows[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000};
  for (int64_t expected : expected_windows) {
    const auto delay = backoff.next_delay();
    EXPECT_EQ(backoff.window().count(), expected);
    EXPECT_GE(delay.count(), 0);
    EXPECT_LE(delay.count(), expected);
  }
  for (int i = 0; i < 100; ++i) EXPECT_LE(backoff.next_delay(), 300000ms);  // no overflow after many failures
  backoff.reset();
  EXPECT_EQ(backoff.failures(), 0u);
  backoff.next_delay();
  EXPECT_EQ(backoff.window(), 1000ms);
}

TEST(Backoff, FullJitterSpreadsOverTheWholeWindow) {
  Backoff backoff(1000ms, 1000ms, 7);
  int64_t lowest = 1000, highest = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto d = backoff.next_delay().count();
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
  }
  // Uniform on [0, 1000]: 2000 draws land near both ends (not "base +- a bit").
  EXPECT_LT(lowest, 50);
  EXPECT_GT(highest, 950);
}

TEST(Backoff, RetryAfterIsAFloorBoundedByTheCap) {
  Backoff backoff(100ms, 60000ms, 1);
  EXPECT_GE(backoff.next_delay(5000ms), 5000ms);
  EXPECT_LE(backoff.next_delay(5000ms), 5000ms);  // the window (200 ms) is below the floor
  EXPECT_EQ(backoff.next_delay(3600000ms), 60000ms);  // an hour is cut to the cap
}

TEST(RetryAfter, ParsesSecondsAndHttpDates) {
  const int64_t now = 1445412480000 - 30000;  // 30 s before Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(parse_retry_after("120", now), 120000ms);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0ms);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), 30000ms);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 60000), 0ms);  // in the past
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("-5", now));
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 CET", now));
  EXPECT_FALSE(parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", now));
  EXPECT_TRUE(parse_retry_after("99999999999999999999999", now));  // huge: "much later", capped by the caller
}

TEST(SplitKeys, AreStableDistinctAndUuidShaped) {
  const std::string key = make_uuid_v4();
  const auto a = derive_split_key(key, 0), b = derive_split_key(key, 1);
  EXPECT_EQ(a, derive_split_key(key, 0));
  EXPECT_NE(a, b);
  EXPECT_NE(a, key);
  EXPECT_TRUE(looks_like_uuid(a));
  EXPECT_TRUE(looks_like_uuid(derive_split_key(a, 1)));
  std::set<std::string> many;
  for (int i = 0; i < 1000; ++i) many.insert(derive_split_key(make_uuid_v4(), i % 2));
  EXPECT_EQ(many.size(), 1000u);
}

TEST(BatchBody, IsNewlineTerminatedNdjsonAndTheUrlHasOneSlash) {
  const std::vector<std::string_view> lines = {R"({"a":1})", R"({"b":2})"};
  EXPECT_EQ(ndjson_body(lines), "{\"a\":1}\n{\"b\":2}\n");
  EXPECT_EQ(batches_url_for("http://c:8088"), "http://c:8088/v1/batches");
  EXPECT_EQ(batches_url_for("https://c.example/ingest/"), "https://c.example/ingest/v1/batches");
}

TEST(CliDuration, AcceptsNginxStyleUnits) {
  using streamtally::cli::parse_duration;
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("10s"), 10000ms);
  EXPECT_EQ(parse_duration("10"), 10000ms);
  EXPECT_EQ(parse_duration("5m"), 300000ms);
  EXPECT_EQ(parse_duration("1h"), 3600000ms);
  EXPECT_FALSE(parse_duration("ten"));
  EXPECT_FALSE(parse_duration("5 s"));
  EXPECT_FALSE(parse_duration("-1s"));
}

}  // namespace
}  // namespace streamtally::upload
