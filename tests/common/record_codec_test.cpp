#include "streamtally/record_codec.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <thread>

#include "test_records.hpp"

using namespace streamtally;
using streamtally::test::sample_record;
using json = nlohmann::json;

TEST(RecordCodec, RoundTripsEveryField) {
  SessionRecord r = sample_record("8d0e2f4e-2b7a-4e0e-9c53-0d7a5cf3b2a1", 3, true);
  r.type = SessionType::Publish;
  r.protocol = Protocol::HttpProgressive;
  r.user_id = "user-42";
  r.token = "tok\"en\\with\nescapes";
  r.bytes_in = 18'446'744'073'709'551'615ull;  // uint64 max: no wrap, no double rounding
  r.bytes_out = 5'000'000'000ull;
  r.end_reason = EndReason::Recovered;
  r.tags = {{"event", "final"}, {"team", "b"}};
  const std::string line = encode_record(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto back = decode_record(line);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, r);
}

TEST(RecordCodec, EncodesTheWireNamesOfSpec) {
  SessionRecord r = sample_record("s1", 0);
  const json j = json::parse(encode_record(r));
  EXPECT_EQ(j["state"], "open");
  EXPECT_EQ(j["type"], "play");
  EXPECT_EQ(j["protocol"], "hls");
  EXPECT_TRUE(j["user_id"].is_null());
  EXPECT_TRUE(j["token"].is_null());
  EXPECT_TRUE(j["ended_at"].is_null());
  EXPECT_TRUE(j["end_reason"].is_null());
  EXPECT_FALSE(j.contains("tags"));
  for (const char* field : {"server_id", "host", "session_id", "seq", "stream", "client_ip", "user_agent", "referer",
                            "started_at", "updated_at", "bytes_in", "bytes_out"})
    EXPECT_TRUE(j.contains(field)) << field;
}

TEST(RecordCodec, EveryProtocolNameRoundTrips) {
  for (const char* name : {"rtmp", "hls", "dash", "http-progressive", "http-flv", "rtsp", "srt", "webrtc", "tcp", "udp",
                           "other"}) {
    auto p = parse_protocol(name);
    ASSERT_TRUE(p) << name;
    EXPECT_EQ(to_string(*p), name);
  }
  EXPECT_FALSE(parse_protocol("HLS"));
  EXPECT_FALSE(parse_protocol(""));
}

struct BadLine {
  std::string mutate_field;
  json value;
  std::string expect_in_error;
};

class RecordCodecRejects : public ::testing::TestWithParam<BadLine> {};

TEST_P(RecordCodecRejects, NamesTheField) {
  json j = json::parse(encode_record(sample_record("s1", 1)));
  const BadLine& bad = GetParam();
  if (bad.value.is_discarded())
    j.erase(bad.mutate_field);
  else
    j[bad.mutate_field] = bad.value;
  auto r = decode_record(j.dump());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(bad.expect_in_error), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Fields, RecordCodecRejects,
    ::testing::Values(BadLine{"seq", "7", "seq"}, BadLine{"seq", -1, "seq"}, BadLine{"state", "paused", "state"},
                      BadLine{"type", "watch", "type"}, BadLine{"protocol", "ftp", "protocol"},
                      BadLine{"bytes_out", -5, "bytes_out"}, BadLine{"bytes_in", 1.5, "bytes_in"},
                      BadLine{"user_agent", std::string(2000, 'a'), "user_agent"},
                      BadLine{"server_id", std::string(65, 'a'), "server_id"},
                      BadLine{"session_id", json(json::value_t::discarded), "session_id"},
                      BadLine{"end_reason", "bored", "end_reason"}, BadLine{"tags", json::array({1}), "tags"},
                      BadLine{"updated_at", 5, "updated_at"}, BadLine{"ended_at", 1'700'000'000'000, "ended_at"}));

TEST(RecordCodec, RejectsMalformedJsonAndInvalidUtf8) {
  EXPECT_EQ(decode_record("{\"server_id\":").error(), "malformed JSON");
  EXPECT_EQ(decode_record("[1,2]").error(), "a record must be a JSON object");
  std::string line = encode_record(sample_record("s1"));
  line.replace(line.find("live/cam1"), 4, "\xFF\xFE\xFD\xFC");
  EXPECT_EQ(decode_record(line).error(), "invalid UTF-8");
  // Invalid bytes in a key, where no field reader looks, are refused all the same.
  line = encode_record(sample_record("s1"));
  line.replace(line.find("\"host\""), 6, "\"h\xC3\"");
  EXPECT_EQ(decode_record(line).error(), "invalid UTF-8");
  // A raw NUL is never JSON: not inside a string, not after a complete object.
  const std::string good = encode_record(sample_record("s1"));
  EXPECT_EQ(decode_record(good + std::string("\0garbage", 8)).error(), "malformed JSON");
  std::string nul_inside = good;
  nul_inside[nul_inside.find("live/cam1") + 4] = '\0';
  EXPECT_EQ(decode_record(nul_inside).error(), "malformed JSON");
  // Escapes decode in place: the text is the one sent.
  std::string escaped = good;
  escaped.replace(escaped.find("live/cam1"), 9, R"(live\/\"cam\"\n\u00e9)");
  ASSERT_TRUE(decode_record(escaped).ok());
  EXPECT_EQ(decode_record(escaped)->stream, "live/\"cam\"\n\xC3\xA9");
}

TEST(RecordCodec, UnicodeEscapesMustSpellValidText) {
  const std::string line = encode_record(sample_record("s1"));
  const std::size_t stream = line.find("live/cam1");
  auto with_stream = [&](const std::string& text) { return std::string(line).replace(stream, 9, text); };
  auto pair = decode_record(with_stream("\\ud83c\\udfa5 cam"));  // a surrogate pair: U+1F3A5
  ASSERT_TRUE(pair.ok()) << pair.error();
  EXPECT_EQ(pair->stream, "\xF0\x9F\x8E\xA5 cam");
  EXPECT_EQ(decode_record(with_stream("\\udc00")).error(), "invalid UTF-8");  // a lone low surrogate
  EXPECT_FALSE(decode_record(with_stream("\\ud800")).ok());                   // a lone high surrogate
}

TEST(RecordCodec, UnknownNamesAreIgnoredAndARepeatedNameKeepsItsFirstValue) {
  json j = json::parse(encode_record(sample_record("s1", 1)));
  j["future_field"] = {{"nested", json::array({1, "two", nullptr, {{"deep", true}}})}};
  j["tags"] = {{"team", "a"}};
  std::string line = j.dump();
  line.insert(line.size() - 1, R"(,"stream":"second","stream":7,"tags":{"team":"b"})");
  auto r = decode_record(line);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->stream, "live/cam1");
  EXPECT_EQ(r->tags, (std::map<std::string, std::string>{{"team", "a"}}));
  // Within the tags, too.
  j.erase("tags");
  line = j.dump();
  line.insert(line.size() - 1, R"(,"tags":{"team":"a","team":"b"})");
  EXPECT_EQ(decode_record(line)->tags.at("team"), "a");
}

TEST(RecordCodec, TheErrorNamesTheFirstWrongFieldInRecordOrder) {
  // Whatever order the members come in: the same line always gets the same answer.
  json j = json::parse(encode_record(sample_record("s1", 1)));
  j.erase("bytes_out");
  j["state"] = 1;
  j["tags"] = {{"nested", {{"a", "b"}}}};
  EXPECT_EQ(decode_record(j.dump()).error(), "field \"state\" must be a string");
  j["state"] = "open";
  EXPECT_EQ(decode_record(j.dump()).error(), "missing field \"bytes_out\"");
  j["bytes_out"] = 0;
  EXPECT_EQ(decode_record(j.dump()).error(), "field \"tags\" must be an object of strings");
}

TEST(RecordCodec, RefusesDeepNestingWithoutExhaustingTheStack) {
  // The parser recurses once a level: a line of a million '[' in an unknown field
  // used to crash the process (the collector's HTTP thread with it).
  std::string line = encode_record(sample_record("s1"));
  line.insert(1, "\"x\":" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + ",");
  std::optional<std::string> error;
  std::thread small_stack([&] { error = decode_record(line).error(); });  // 8 MiB, like any thread's
  small_stack.join();
  EXPECT_EQ(error, "JSON nested deeper than 16 levels");
  line = encode_record(sample_record("s1"));
  line.insert(1, "\"x\":" + std::string(15, '[') + std::string(15, ']') + ",");  // 16 with the record
  EXPECT_TRUE(decode_record(line).ok());
}

TEST(RecordCodec, AStringOverItsLimitIsRefusedNotTruncated) {
  json j = json::parse(encode_record(sample_record("s1", 1)));
  j["user_agent"] = std::string(10 << 20, 'A');  // 10 MiB
  EXPECT_EQ(decode_record(j.dump()).error(), "field \"user_agent\" is too long");
  j["user_agent"] = std::string(kMaxTextBytes, 'A');
  EXPECT_EQ(decode_record(j.dump())->user_agent.size(), kMaxTextBytes);
}

TEST(RecordCodec, ClosedRecordNeedsEndedAt) {
  SessionRecord r = sample_record("s1", 2, true);
  r.ended_at.reset();
  EXPECT_FALSE(validate_record(r).ok());
}

TEST(RecordSanitize, TruncatesHugeAndInvalidClientStrings) {
  SessionRecord r = sample_record("s1");
  r.user_agent = std::string(1 << 20, 'A') + "\xE2\x82\xAC";
  r.referer = "http://x/\xFF\xFE";
  r.stream = std::string(1023, 'x') + "\xE2\x82\xAC";  // the euro sign would cross 1024
  r.server_id = std::string(100, 's');
  sanitize(r);
  EXPECT_EQ(r.user_agent.size(), kMaxTextBytes);
  EXPECT_EQ(r.referer, "http://x/\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(r.stream, std::string(1023, 'x'));
  EXPECT_EQ(r.server_id.size(), kMaxServerIdBytes);
  auto back = decode_record(encode_record(r));
  ASSERT_TRUE(back.ok()) << back.error();  // what the edge sends, the collector accepts
}
