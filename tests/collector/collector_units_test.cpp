// Unit tests of the collector's pure parts: time attribution, the CCU sweep, the
// query-parameter parsers. Expected values come from brute force or by hand.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "attribution.hpp"
#include "batch_decoder.hpp"
#include "ccu_sweep.hpp"
#include "query_params.hpp"

namespace streamtally::collector {
namespace {

TEST(Attribution, SharesSumExactlyAndFollowTime) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const int64_t from = 1'700'000'000'000 + static_cast<int64_t>(rng() % 10'000'000);
    const int64_t to = from + static_cast<int64_t>(rng() % 20'000'000);
    const int64_t delta = static_cast<int64_t>(rng() % 4'000'000'000'000'000'000ULL) - 1'000'000'000'000'000'000;
    std::map<int64_t, Counters> minutes;
    attribute_interval(from, to, delta, delta / 3, +1, [&](int64_t m, const Counters& c) { minutes[m] += c; });
    int64_t bytes = 0, third = 0, time = 0;
    for (const auto& [m, c] : minutes) {
      EXPECT_EQ(m % kMinuteMs, 0);
      bytes += c.bytes_in, third += c.bytes_out, time += c.viewtime_ms;
      // Each minute gets its share of time; the share of bytes is within 1 of proportional.
      const int64_t lo = std::max(from, m), hi = std::min(to, m + kMinuteMs);
      EXPECT_EQ(c.viewtime_ms, hi - lo);
      const long double exact = static_cast<long double>(delta) * (hi - lo) / (to - from);
      EXPECT_LE(std::abs(static_cast<long double>(c.bytes_in) - exact), 1.0L + std::abs(exact) * 1e-15L);
    }
    if (to == from) {
      EXPECT_EQ(minutes.size(), 1u);
    }
    EXPECT_EQ(bytes, delta);
    EXPECT_EQ(third, delta / 3);
    EXPECT_EQ(time, to - from);
  }
}

TEST(Attribution, RemovingASessionUndoesIt) {
  SessionShape s{1'000'000, true, {{0, 1'050'000, 10, 500}, {1, 1'200'000, 20, 1500}, {3, 1'200'000, 30, 1700}}};
  std::map<int64_t, Counters> cells;
  auto sink = [&](int64_t m, const Counters& c) { cells[m] += c; };
  attribute_session(s, +1, sink);
  Counters total;
  for (const auto& [m, c] : cells) total += c;
  EXPECT_EQ(total.starts, 1);
  EXPECT_EQ(total.views, 1);
  EXPECT_EQ(total.ends, 1);
  EXPECT_EQ(total.bytes_out, 1700);
  EXPECT_EQ(total.viewtime_ms, 200'000);
  EXPECT_EQ(cells[floor_to(1'200'000, kMinuteMs)].ends, 1);
  attribute_session(s, -1, sink);
  for (const auto& [m, c] : cells) EXPECT_TRUE(c.zero()) << m;
}

TEST(CcuSweep, MatchesBruteForceOverEveryInstant) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<OpenInterval> sessions;
    const int n = static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) {
      const int64_t start = rng() % 100;
      const int64_t length = rng() % 4 == 0 ? 0 : rng() % 40;
      sessions.push_back({start, start + length});
    }
    const int64_t first = 10, length = 7, count = 15;
    const auto got = max_concurrency(sessions, first, length, count);
    for (int64_t b = 0; b < count; ++b) {
      int64_t best = 0;
      for (int64_t t = first + b * length; t < first + (b + 1) * length; ++t) {
        int64_t open = 0;
        for (const auto& s : sessions) open += (s.start <= t && t < s.end) || (s.start == t && s.end == t);
        best = std::max(best, open);
      }
      EXPECT_EQ(got[b], best) << "round " << round << " bucket " << b;
    }
  }
}

TEST(CcuSweep, AReconnectAtTheSameInstantCountsOnce) {
  const auto ccu = max_concurrency({{0, 100}, {100, 200}}, 0, 1000, 1);
  EXPECT_EQ(ccu[0], 1);
}

TEST(QueryParams, TimesInMillisecondsAndIso8601) {
  EXPECT_EQ(*parse_time("1763700000000", "from"), 1763700000000);
  EXPECT_EQ(*parse_time("2026-11-05", "from"), 1793836800000);
  EXPECT_EQ(*parse_time("2026-11-05T12:34:56Z", "from"), 1793836800000 + (12 * 3600 + 34 * 60 + 56) * 1000LL);
  EXPECT_EQ(*parse_time("2026-11-05T12:34:56.789+01:00", "from"),
            1793836800000 + (11 * 3600 + 34 * 60 + 56) * 1000LL + 789);
  EXPECT_EQ(*parse_time("2026-11-05T12:34", "from"), 1793836800000 + (12 * 3600 + 34 * 60) * 1000LL);
  for (const char* bad : {"", "2026-02-30", "2026-11-05T25:00", "1e9", "2026-11-05Tnoon", "-1", "10000-01-01"}) {
    auto r = parse_time(bad, "from");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().rfind("from:", 0), 0u) << r.error();
    }
  }
}

TEST(QueryParams, WhereKeepsEncodedSeparatorsInsideValues) {
  auto p = QueryParams::parse("metrics=sessions&where=stream==a%2Cb,c;tag.event==semi%3Bfinal");
  auto where = parse_where(p);
  ASSERT_TRUE(where.ok()) << where.error();
  ASSERT_EQ(where->size(), 2u);
  EXPECT_EQ((*where)[0].dimension, "stream");
  EXPECT_EQ((*where)[0].values, (std::vector<std::string>{"a,b", "c"}));
  EXPECT_EQ((*where)[1].dimension, "tag.event");
  EXPECT_EQ((*where)[1].values, (std::vector<std::string>{"semi;final"}));
}

TEST(QueryParams, CalendarMonths) {
  const int64_t nov = *parse_month("2026-11");
  EXPECT_EQ(format_month(nov), "2026-11");
  EXPECT_EQ(format_month(add_months(nov, -1)), "2026-10");
  EXPECT_EQ(format_month(add_months(nov, 2)), "2027-01");
  EXPECT_EQ(month_start(nov + 12345678), nov);
  EXPECT_EQ(*parse_bucket("5m"), 5 * kMinuteMs);
  EXPECT_EQ(*parse_bucket("1d"), kDayMs);
  EXPECT_FALSE(parse_bucket("0m").ok());
}

TEST(BatchDecoder, RefererDomains) {
  EXPECT_EQ(referer_domain("https://WWW.Example.com:8443/a?b"), "www.example.com");
  EXPECT_EQ(referer_domain("http://user:pw@host.tv/x"), "host.tv");
  EXPECT_EQ(referer_domain("http://[2001:db8::1]:80/"), "[2001:db8::1]");
  EXPECT_EQ(referer_domain("not a url"), "");
  EXPECT_EQ(referer_domain(""), "");
}

}  // namespace
}  // namespace streamtally::collector
