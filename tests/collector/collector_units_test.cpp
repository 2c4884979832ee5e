// Unit tests of the collector's pure parts: time attribution, the CCU sweep, the
// query-parameter parsers, the inbox row format, the session key filter, the inbox
// handoff, the applier's recent points, the background release. Expected values come from brute force or by hand.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "attribution.hpp"
#include "background_release.hpp"
#include "batch_decoder.hpp"
#include "ccu_sweep.hpp"
#include "inbox_codec.hpp"
#include "inbox_handoff.hpp"
#include "query_params.hpp"
#include "recent_points.hpp"
#include "session_cache.hpp"
#include "session_key_filter.hpp"
#include "update_chain.hpp"
#include "streamtally/gzip.hpp"
#include "streamtally/record_codec.hpp"

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

TEST(CcuSweep, LargeInputsOverAWideSpanMatchBruteForce) {
  // Enough sessions for the radix sort of the sweep, over a span needing several of its
  // passes, from a negative base. The most sessions are open at a bucket's first instant
  // or at a start inside it, so brute force checks those instants.
  std::mt19937_64 rng(11);
  const int64_t base = -(int64_t{1} << 40), span = int64_t{1} << 34;
  std::vector<OpenInterval> sessions;
  for (int i = 0; i < 6000; ++i) {
    const int64_t start = base + static_cast<int64_t>(rng() % static_cast<uint64_t>(span));
    const int64_t length = rng() % 5 == 0 ? 0 : static_cast<int64_t>(rng() % (uint64_t{1} << 32));
    sessions.push_back({start, start + length});
  }
  const int64_t count = 12, length = span / count;
  const auto got = max_concurrency(sessions, base, length, count);
  auto open_at = [&](int64_t t) {
    int64_t open = 0;
    for (const auto& s : sessions) open += (s.start <= t && t < s.end) || (s.start == t && s.end == t);
    return open;
  };
  for (int64_t b = 0; b < count; ++b) {
    const int64_t begin = base + b * length, end = begin + length;
    int64_t best = open_at(begin);
    for (const auto& s : sessions)
      if (s.start >= begin && s.start < end) best = std::max(best, open_at(s.start));
    EXPECT_EQ(got[b], best) << "bucket " << b;
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

// Records with every field set, unset, empty and at its extremes.
std::vector<IngestRecord> inbox_samples() {
  std::vector<IngestRecord> out(3);
  IngestRecord& full = out[0];
  full.record.server_id = "edge-1";
  full.record.host = "edge-1.example.net";
  full.record.session_id = "5f0c6a1e-3b1d-4c8e-9a57-0d2f7c1e9b44";
  full.record.seq = 41;
  full.record.state = SessionState::Closed;
  full.record.type = SessionType::Publish;
  full.record.protocol = Protocol::Other;
  full.record.stream = "live/\xc3\xa9t\xc3\xa9";  // UTF-8 survives as bytes
  full.record.client_ip = "2001:db8::1";
  full.record.user_agent = std::string(70'000, 'u');  // longer than one varint byte's worth
  full.record.referer = "https://www.example.com/watch?v=1";
  full.record.user_id = "user-7";
  full.record.token = "";
  full.record.started_at = 1'794'000'000'000;
  full.record.updated_at = 1'793'999'999'000;  // before started_at: a clock step
  full.record.ended_at = 1'794'000'360'000;
  full.record.bytes_in = 0;
  full.record.bytes_out = static_cast<uint64_t>(INT64_MAX);
  full.record.end_reason = EndReason::Recovered;
  full.record.tags = {{"a", "1"}, {"", ""}, {"k\n", "v\t"}};
  full.country = "DE", full.device_type = "tv", full.os = "Roku", full.browser = "Roku";
  full.referer_domain = "www.example.com";
  IngestRecord& extremes = out[1];
  extremes.record.seq = INT64_MAX;
  extremes.record.started_at = INT64_MIN;
  extremes.record.updated_at = INT64_MAX;  // offsets wrap around, values do not
  extremes.record.ended_at = INT64_MIN;
  extremes.record.bytes_in = UINT64_MAX;
  out[2].record.seq = -1;  // defaults everywhere else: empty strings, no optionals
  return out;
}

// The samples as one inbox row.
std::string encoded(const std::vector<IngestRecord>& records) {
  std::vector<const IngestRecord*> pointers;
  for (const auto& r : records) pointers.push_back(&r);
  std::string row;
  encode_inbox_records(pointers, row);
  return row;
}

TEST(InboxCodec, EveryFieldRoundTrips) {
  const auto records = inbox_samples();
  const std::string row = encoded(records);
  auto decoded = decode_inbox_records(row, {});
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  ASSERT_EQ(decoded->size(), records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ((*decoded)[i].record, records[i].record) << "record " << i;
    EXPECT_EQ((*decoded)[i].country, records[i].country);
    EXPECT_EQ((*decoded)[i].device_type, records[i].device_type);
    EXPECT_EQ((*decoded)[i].os, records[i].os);
    EXPECT_EQ((*decoded)[i].browser, records[i].browser);
    EXPECT_EQ((*decoded)[i].referer_domain, records[i].referer_domain);
  }
}

TEST(InboxCodec, DamagedRowsAreErrorsNeverCrashes) {
  const std::string row = encoded(inbox_samples());
  // Every truncation, and a row with trailing bytes, is refused with a reason.
  for (std::size_t n = 0; n < row.size(); n += (n < 200 ? 1 : 997)) {
    auto cut = decode_inbox_records(std::string_view(row).substr(0, n), {});
    EXPECT_FALSE(cut.ok()) << "truncated to " << n;
    if (!cut.ok()) {
      EXPECT_TRUE(cut.error().starts_with("inbox row: ")) << cut.error();
    }
  }
  EXPECT_FALSE(decode_inbox_records(row + "x", {}).ok());
  // Flipped bytes: an error or some records, never a read past the row's end.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = row.substr(0, 400);
    bad[rng() % bad.size()] = static_cast<char>(rng());
    (void)decode_inbox_records(bad, {});
  }
  // A record count no row could hold does not become an allocation.
  EXPECT_FALSE(decode_inbox_records(std::string("\x01\xff\xff\xff\xff\xff\xff\xff\x7f", 9), {}).ok());
  EXPECT_FALSE(decode_inbox_records(std::string("\x03\x00", 2), {}).ok());  // unknown format
}

// A batch as the HTTP layer has it: decoded from gzip NDJSON, enriched, the body kept.
IngestBatch gzip_batch(const std::vector<IngestRecord>& samples, const EnrichFn& enrich) {
  std::string ndjson;
  for (const IngestRecord& in : samples) {
    SessionRecord r = in.record;
    r.seq = std::max<int64_t>(r.seq, 0), r.started_at = 1'794'000'000'000, r.updated_at = r.started_at;
    r.state = SessionState::Open, r.ended_at.reset(), r.end_reason = EndReason::None;
    r.server_id = "edge", r.session_id = "s" + std::to_string(ndjson.size());
    r.user_agent.resize(std::min<std::size_t>(r.user_agent.size(), kMaxTextBytes));
    r.tags.erase("");
    r.bytes_in = std::min<uint64_t>(r.bytes_in, INT64_MAX);
    encode_record(r, ndjson);
    ndjson += "\n";
  }
  IngestBatch batch;
  EXPECT_FALSE(decode_batch("gzip", gzip_compress(ndjson), {}, enrich, batch));
  EXPECT_FALSE(batch.gzip_ndjson.empty());
  return batch;
}

TEST(InboxCodec, AGzipRowGivesBackItsNewRecordsDerivedAgain) {
  // Derived from the record alone, like the collector's enrichment.
  const EnrichFn enrich = [](IngestRecord& in) { in.country = in.record.client_ip == "2001:db8::1" ? "DE" : "XX"; };
  const IngestBatch batch = gzip_batch(inbox_samples(), enrich);
  ASSERT_EQ(batch.records.size(), 3u);
  for (const std::vector<std::size_t>& fresh_indexes : std::vector<std::vector<std::size_t>>{{0, 1, 2}, {0, 2}, {1}}) {
    std::vector<const IngestRecord*> fresh;
    for (std::size_t i : fresh_indexes) fresh.push_back(&batch.records[i]);
    std::string row;
    encode_inbox_gzip_row(batch, fresh, row);
    auto decoded = decode_inbox_records(row, enrich);
    ASSERT_TRUE(decoded.ok()) << decoded.error();
    ASSERT_EQ(decoded->size(), fresh.size());
    for (std::size_t i = 0; i < fresh.size(); ++i) {
      EXPECT_EQ((*decoded)[i].record, fresh[i]->record) << "record " << i;
      EXPECT_EQ((*decoded)[i].country, fresh[i]->country);
      EXPECT_EQ((*decoded)[i].referer_domain, fresh[i]->referer_domain);
    }
    EXPECT_EQ((*decoded)[0].country, fresh_indexes[0] == 0 ? "DE" : "XX");
  }
}

TEST(InboxCodec, DamagedGzipRowsAreErrors) {
  const IngestBatch batch = gzip_batch(inbox_samples(), {});
  std::vector<const IngestRecord*> fresh{&batch.records[0], &batch.records[2]};
  std::string row;
  encode_inbox_gzip_row(batch, fresh, row);
  for (std::size_t n = 0; n < row.size(); n += 7) {
    auto cut = decode_inbox_records(std::string_view(row).substr(0, n), {});
    EXPECT_FALSE(cut.ok()) << "truncated to " << n;
    if (!cut.ok()) {
      EXPECT_TRUE(cut.error().starts_with("inbox row: ")) << cut.error();
    }
  }
  std::string wrong_count = row;
  wrong_count[1] = 4;  // the batch has 3 records
  EXPECT_EQ(decode_inbox_records(wrong_count, {}).error(), "inbox row: 3 records, 4 expected");
  std::string wrong_bitmap = row;
  wrong_bitmap.insert(3, 1, '\0'), ++wrong_bitmap[2];  // two bytes for 3 records
  EXPECT_FALSE(decode_inbox_records(wrong_bitmap, {}).ok());
}

// Points an apply packs into one chain row: the usual deltas, and the extremes.
std::vector<UpdatePoint> chain_samples() {
  std::vector<UpdatePoint> points;
  for (int64_t seq = 0; seq < 50; ++seq)
    points.push_back({seq, 1'794'000'000'000 + 60'000 * seq, 150 * seq, 9'000'000 * seq});
  points.push_back({INT64_MAX - 1, INT64_MIN, INT64_MAX, 0});  // differences wrap around
  points.push_back({INT64_MAX, INT64_MAX, INT64_MIN, -1});
  return points;
}

TEST(UpdateChainCodec, PointsRoundTripAndTakeFewBytes) {
  const auto points = chain_samples();
  std::string row;
  encode_chain_points(std::span(points).first(50), row);
  EXPECT_LT(row.size(), 50u * 12);  // ~10 bytes a point, not a 40-byte row
  encode_chain_points(points, row = "");
  std::vector<UpdatePoint> decoded;
  ASSERT_TRUE(decode_chain_points(row, decoded).ok());
  ASSERT_EQ(decoded.size(), points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(decoded[i].seq, points[i].seq) << i;
    EXPECT_EQ(decoded[i].t, points[i].t) << i;
    EXPECT_EQ(decoded[i].bytes_in, points[i].bytes_in) << i;
    EXPECT_EQ(decoded[i].bytes_out, points[i].bytes_out) << i;
  }
}

TEST(UpdateChainCodec, DamagedRowsAreErrorsNeverCrashes) {
  std::string row;
  encode_chain_points(chain_samples(), row);
  std::vector<UpdatePoint> out;
  for (std::size_t n = 0; n < row.size(); ++n) {
    Status cut = decode_chain_points(std::string_view(row).substr(0, n), out);
    EXPECT_FALSE(cut.ok()) << "truncated to " << n;
    if (!cut.ok()) {
      EXPECT_TRUE(cut.error().starts_with("update chain: ")) << cut.error();
    }
  }
  EXPECT_FALSE(decode_chain_points(row + "x", out).ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = row;
    bad[rng() % bad.size()] = static_cast<char>(rng());
    out.clear();
    (void)decode_chain_points(bad, out);
    EXPECT_LE(out.size(), bad.size() / 4);
  }
  EXPECT_FALSE(decode_chain_points(std::string("\x01\xff\xff\xff\xff\x0f", 6), out).ok());  // count, no points
  EXPECT_FALSE(decode_chain_points(std::string("\x02\x00", 2), out).ok());  // unknown format
}

}  // namespace
}  // namespace streamtally::collector

namespace streamtally::collector {
namespace {

// Every key added is held (admission relies on it to find re-sends); keys never added
// are mostly not, at the rates session_key_filter.hpp states.
TEST(SessionKeyFilter, HoldsEveryKeyAddedAndFewOthers) {
  auto false_positives = [](uint64_t sized_for, int added) {
    SessionKeyFilter filter(sized_for);
    for (int i = 0; i < added; ++i) filter.add(session_key("srv-" + std::to_string(i % 16), "s-" + std::to_string(i)));
    for (int i = 0; i < added; ++i)
      if (!filter.may_hold(session_key("srv-" + std::to_string(i % 16), "s-" + std::to_string(i)))) return -1.0;
    int held = 0;
    constexpr int kProbes = 200'000;
    for (int i = 0; i < kProbes; ++i) held += filter.may_hold(session_key("srv-" + std::to_string(i % 16), "new-" + std::to_string(i)));
    return static_cast<double>(held) / kProbes;
  };
  // At open (half the size), then once the store has doubled.
  const double at_open = false_positives(SessionKeyFilter::kMinSessions, SessionKeyFilter::kMinSessions);
  const double doubled = false_positives(SessionKeyFilter::kMinSessions, 2 * SessionKeyFilter::kMinSessions);
  EXPECT_GE(at_open, 0.0) << "a key added is not held";
  EXPECT_LT(at_open, 0.005);
  EXPECT_GE(doubled, 0.0) << "a key added is not held";
  EXPECT_LT(doubled, 0.05);
  std::printf("false positives: %.4f at open, %.4f once doubled\n", at_open, doubled);
}

}  // namespace
}  // namespace streamtally::collector

namespace streamtally::collector {
namespace {

InboxHandoff::Row handoff_row(int64_t id, int records) {
  InboxHandoff::Row row{id, std::vector<IngestRecord>(static_cast<std::size_t>(records))};
  for (int i = 0; i < records; ++i) row.records[static_cast<std::size_t>(i)].record.seq = id * 100 + i;
  return row;
}
std::vector<InboxHandoff::Row> handoff_rows(std::initializer_list<std::pair<int64_t, int>> rows) {
  std::vector<InboxHandoff::Row> out;
  for (auto [id, records] : rows) out.push_back(handoff_row(id, records));
  return out;
}
std::vector<int64_t> ids_of(const std::vector<InboxHandoff::Row>& rows) {
  std::vector<int64_t> ids;
  for (const auto& row : rows) ids.push_back(row.id);
  return ids;
}

// take() answers the rows after `applied`, in order: held ones, or where to read the file.
TEST(InboxHandoff, TakesTheRowsAfterTheAppliedOneThroughTheLastCommitted) {
  InboxHandoff handoff(100, 0);
  handoff.publish(handoff_rows({{1, 3}, {2, 4}, {3, 5}}));
  auto first = handoff.take(0, 2, 100);  // row 3 committed after the applier looked
  EXPECT_EQ(ids_of(first.held), (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(first.held.size(), 2u);
  ASSERT_EQ(first.held[1].records.size(), 4u);
  EXPECT_EQ(first.held[1].records[3].record.seq, 203);
  EXPECT_EQ(ids_of(handoff.take(2, 3, 100).held), (std::vector<int64_t>{3}));
  // Committed rows that no group has published yet: the file has them.
  auto unpublished = handoff.take(3, 5, 100);
  EXPECT_TRUE(unpublished.held.empty());
  EXPECT_EQ(unpublished.file_through, 5);
}

TEST(InboxHandoff, AChunkEndsOnceItHoldsEnoughRecords) {
  InboxHandoff handoff(100, 0);
  handoff.publish(handoff_rows({{1, 6}, {2, 6}, {3, 6}}));
  EXPECT_EQ(ids_of(handoff.take(0, 3, 10).held), (std::vector<int64_t>{1, 2}));
}

// Rows that did not fit are only in the file: the applier reads them there, between
// the held rows before and after them, and nothing is skipped or applied twice.
TEST(InboxHandoff, RowsThatDidNotFitAreReadFromTheFileInTheirTurn) {
  InboxHandoff handoff(10, 0);
  handoff.publish(handoff_rows({{1, 6}, {2, 6}, {3, 5}, {4, 4}}));  // rows 2 and 3 would make 12 and 11
  EXPECT_EQ(ids_of(handoff.take(0, 4, 100).held), (std::vector<int64_t>{1}));
  handoff.publish(handoff_rows({{5, 6}}));  // fits again: row 1 was taken
  auto marked = handoff.take(1, 5, 100);
  EXPECT_TRUE(marked.held.empty());
  EXPECT_EQ(marked.file_through, 3);
  EXPECT_EQ(handoff.take(1, 2, 100).file_through, 2);  // never past what the applier asked for
  EXPECT_EQ(ids_of(handoff.take(3, 5, 100).held), (std::vector<int64_t>{4, 5}));
}

// A failed apply took records that are gone with it: those rows come from the file
// next, before the rows still held after them.
TEST(InboxHandoff, RowsOfAFailedApplyAreReadFromTheFileNext) {
  InboxHandoff handoff(100, 0);
  handoff.publish(handoff_rows({{1, 2}, {2, 2}, {3, 2}}));
  EXPECT_EQ(ids_of(handoff.take(0, 2, 100).held), (std::vector<int64_t>{1, 2}));
  handoff.not_applied(2);
  auto again = handoff.take(0, 3, 100);
  EXPECT_TRUE(again.held.empty());
  EXPECT_EQ(again.file_through, 2);
  EXPECT_EQ(ids_of(handoff.take(2, 3, 100).held), (std::vector<int64_t>{3}));
}

// Ingest waits while the handoff holds as many records as wake the applier; the applier
// taking rows (or a failed apply dropping them) lets it go on. A missing wake-up holds
// the waiter past the test's timeout.
TEST(InboxHandoff, IngestWaitsWhileTheApplierHasEnoughToTake) {
  InboxHandoff handoff(100, 0);
  EXPECT_TRUE(handoff.wait_while_holding(4, std::chrono::minutes(10)));  // none held: no wait
  handoff.publish(handoff_rows({{1, 2}, {2, 2}}));
  EXPECT_FALSE(handoff.wait_while_holding(4, std::chrono::milliseconds(1)));  // 4 held: the limit passes
  EXPECT_TRUE(handoff.wait_while_holding(5, std::chrono::minutes(10)));
  for (const bool by_failed_apply : {false, true}) {
    std::atomic<bool> waiting{false};
    std::optional<bool> room;
    std::thread ingest([&] {
      waiting = true;
      room = handoff.wait_while_holding(4, std::chrono::minutes(10));
    });
    while (!waiting) std::this_thread::yield();
    if (by_failed_apply) {
      handoff.not_applied(4);
    } else {
      EXPECT_EQ(ids_of(handoff.take(0, 2, 2).held), (std::vector<int64_t>{1}));
    }
    ingest.join();
    EXPECT_EQ(room, true);
    handoff.publish(handoff_rows({{3, 2}, {4, 2}}));  // 4 held again (with row 2, or alone)
  }
}

// After a restart the rows that wait were written by the last process: only in the file.
TEST(InboxHandoff, RowsFromBeforeOpenAreReadFromTheFile) {
  InboxHandoff handoff(100, 7);
  handoff.publish(handoff_rows({{8, 1}}));
  auto before = handoff.take(5, 8, 100);
  EXPECT_TRUE(before.held.empty());
  EXPECT_EQ(before.file_through, 7);
  EXPECT_EQ(ids_of(handoff.take(7, 8, 100).held), (std::vector<int64_t>{8}));
}

}  // namespace
}  // namespace streamtally::collector

namespace streamtally::collector {
namespace {

// RecentPoints against the whole chain, kept by brute force, through what the applier
// does: next updates, late ones it places itself, and the chain read when it cannot.
// What it keeps is always the last points before the latest (after the session's start),
// and the interval it names for a late seq is the one of the chain that holds it.
TEST(RecentPoints, KnowsTheLastPointsBeforeTheLatestAndWhereALateOneFalls) {
  constexpr int64_t kStarted = 5'000;
  std::mt19937_64 rng(3);
  int placed = 0, left_to_the_chain = 0;
  for (int session = 0; session < 200; ++session) {
    std::vector<UpdatePoint> chain{{rng() % 3 == 0 ? 0 : 10, kStarted + 10, 1, 1}};  // by seq
    RecentPoints recent(kStarted, {});
    auto point = [](int64_t seq) { return UpdatePoint{seq, kStarted + seq, seq, seq}; };
    for (int step = 0; step < 30; ++step) {
      const UpdatePoint latest = chain.back();
      const int64_t seq = rng() % 2 ? latest.seq + 1 + static_cast<int64_t>(rng() % 3)
                                    : static_cast<int64_t>(rng() % static_cast<uint64_t>(latest.seq + 1));
      const auto at = std::lower_bound(chain.begin(), chain.end(), seq,
                                       [](const UpdatePoint& p, int64_t s) { return p.seq < s; });
      const bool held = at != chain.end() && at->seq == seq;
      if (seq > latest.seq) {  // the next update
        recent.add(latest);
        chain.push_back(point(seq));
      } else if (const auto below = seq == latest.seq ? std::nullopt : recent.just_below(seq)) {
        ASSERT_FALSE(held) << "a seq the chain holds is placed";
        const UpdatePoint& from = recent[*below];
        const int64_t to = *below + 1 < recent.size() ? recent[*below + 1].seq : latest.seq;
        EXPECT_EQ(from.seq, at == chain.begin() ? INT64_MIN : (at - 1)->seq);
        EXPECT_EQ(to, at->seq);
        recent.add(point(seq));
        chain.insert(at, point(seq));
        ++placed;
      } else {  // the chain decides, and the applier starts again from it
        if (!held) chain.insert(at, point(seq));
        recent = RecentPoints(kStarted, std::span(chain).first(chain.size() - 1));
        ++left_to_the_chain;
      }
      // The last points before the latest, the session's start first when all of them.
      std::vector<int64_t> expected{INT64_MIN};
      for (std::size_t i = 0; i + 1 < chain.size(); ++i) expected.push_back(chain[i].seq);
      ASSERT_LE(recent.size(), RecentPoints::kCapacity);
      ASSERT_GE(recent.size(), std::min(expected.size(), RecentPoints::kCapacity));
      for (std::size_t i = 0; i < recent.size(); ++i)
        ASSERT_EQ(recent[i].seq, expected[expected.size() - recent.size() + i]) << "session " << session;
    }
  }
  EXPECT_GT(placed, 500);
  EXPECT_GT(left_to_the_chain, 500);
}

}  // namespace
}  // namespace streamtally::collector

namespace streamtally::collector {
namespace {

// What BackgroundRelease is handed is destroyed, each once, on its own thread, and what
// is still queued when it goes is destroyed before its destructor returns.
TEST(BackgroundRelease, DestroysWhatItIsHandedOnItsOwnThreadAndAllOfItAtTheEnd) {
  struct Tracked {
    std::atomic<int>* destroyed;
    std::atomic<int>* on_caller;
    std::thread::id caller;
    ~Tracked() {
      ++*destroyed;
      if (std::this_thread::get_id() == caller) ++*on_caller;
    }
  };
  std::atomic<int> destroyed{0}, on_caller{0};
  constexpr int kHanded = 10'000;
  {
    BackgroundRelease release;
    for (int i = 0; i < kHanded; ++i)
      release.release(std::make_shared<Tracked>(&destroyed, &on_caller, std::this_thread::get_id()));
  }
  EXPECT_EQ(destroyed.load(), kHanded);
  EXPECT_EQ(on_caller.load(), 0);
}

}  // namespace
}  // namespace streamtally::collector
