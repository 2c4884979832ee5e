// The strict record decoder: RapidJSON's SAX reader writes each field straight into
// the SessionRecord as the parser meets it. A DOM first, then a copy of every string
// out of it, cost about twice as much; ingest runs this once per record.
#include "streamtally/record_codec.hpp"

// RapidJSON's SIMD scanning of strings and whitespace, where the target has it.
#if defined(__SSE4_2__)
#define RAPIDJSON_SSE42
#elif defined(__SSE2__)
#define RAPIDJSON_SSE2
#elif defined(__ARM_NEON)
#define RAPIDJSON_NEON
#endif
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include "streamtally/utf8.hpp"

namespace streamtally {
namespace {

// The record's fields, in the order encode_record() writes them. When several are
// wrong, the error names the first in this order (whatever order the line has).
enum Field : std::size_t {
  kServerId, kHost, kSessionId, kSeq, kState, kType, kProtocol, kStream, kClientIp, kUserAgent, kReferer,
  kUserId, kToken, kStartedAt, kUpdatedAt, kEndedAt, kBytesIn, kBytesOut, kEndReason, kTags, kFieldCount
};
constexpr std::string_view kFieldNames[kFieldCount] = {
    "server_id", "host", "session_id", "seq", "state", "type", "protocol", "stream", "client_ip", "user_agent",
    "referer", "user_id", "token", "started_at", "updated_at", "ended_at", "bytes_in", "bytes_out", "end_reason",
    "tags"};
constexpr bool kRequired[kFieldCount] = {true,  false, true,  true,  true,  true,  true,  false, false, false,
                                         false, false, false, true,  true,  false, true,  true,  false, false};
constexpr uint32_t kRequiredBits = [] {
  uint32_t bits = 0;
  for (std::size_t f = 0; f < kFieldCount; ++f) bits |= kRequired[f] ? 1u << f : 0;
  return bits;
}();

// Deeper than this is no record: the parser recurses once a level, so an unbounded
// depth (a line of a million '[') would overflow the thread's stack.
constexpr int kMaxDepth = 16;

// What is wrong with a field, by kind of value expected.
constexpr const char* kNotString = "must be a string";
constexpr const char* kNotNullableString = "must be a string or null";
constexpr const char* kNotInteger = "must be an integer";
constexpr const char* kNotUnsigned = "must be an unsigned integer";
constexpr const char* kTooLong = "is too long";
constexpr const char* kNotTags = "must be an object of strings";
constexpr const char* kNotEndReason = "must be null or one of client, server, timeout, error, recovered";
constexpr const char* kNotState = "must be one of open, closed";
constexpr const char* kNotType = "must be one of play, publish";
constexpr const char* kNotProtocol =
    "must be one of rtmp, hls, dash, http-progressive, http-flv, rtsp, srt, webrtc, tcp, udp, other";

// SAX events of one line -> the record. Never stops the parse for a wrong field (a
// malformed line must still say "malformed JSON"), only for excessive depth.
class RecordHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RecordHandler> {
 public:
  explicit RecordHandler(SessionRecord& r) : r_(r) {}

  bool too_deep() const { return too_deep_; }
  bool root_is_object() const { return root_is_object_; }

  // The first problem in field order: a required field missing, or a value refused.
  // "" when there is none.
  std::string error() const {
    for (std::size_t f = 0; f < kFieldCount; ++f) {
      const std::string name(kFieldNames[f]);
      if (!(seen_ & (1u << f)) && kRequired[f]) return "missing field \"" + name + "\"";
      if (problem_[f]) return "field \"" + name + "\" " + problem_[f];
    }
    return {};
  }
  bool ok() const { return (seen_ & kRequiredBits) == kRequiredBits && !any_problem_; }

  bool StartObject() {
    if (depth_ == 0) root_is_object_ = true;
    else if (depth_ == 1 && field_ == kTags) in_tags_ = true;
    else if (depth_ == 1) wrong_kind();
    else if (depth_ == 2 && in_tags_) refuse(kTags, kNotTags);
    return enter();
  }
  bool EndObject(rapidjson::SizeType) { return leave(); }
  bool StartArray() {
    if (depth_ == 1) wrong_kind();
    else if (depth_ == 2 && in_tags_) refuse(kTags, kNotTags);
    return enter();
  }
  bool EndArray(rapidjson::SizeType) { return leave(); }

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    const std::string_view name(s, n);
    if (depth_ == 1) field_ = field_named(name);
    else if (depth_ == 2 && in_tags_) tag_key_ = name;
    return true;
  }

  bool String(const char* s, rapidjson::SizeType n, bool) {
    const std::string_view v(s, n);
    if (depth_ == 2 && in_tags_) add_tag(v);
    if (depth_ != 1) return true;
    switch (field_) {
      case kServerId: text(r_.server_id, v, kMaxServerIdBytes); break;
      case kHost: case kSessionId: case kStream: case kClientIp: case kUserAgent: case kReferer:
        text(text_field(field_), v, kMaxTextBytes);
        break;
      case kUserId: nullable_text(r_.user_id, v); break;
      case kToken: nullable_text(r_.token, v); break;
      case kState: enumeration(r_.state, parse_session_state(v), kNotState); break;
      case kType: enumeration(r_.type, parse_session_type(v), kNotType); break;
      case kProtocol: enumeration(r_.protocol, parse_protocol(v), kNotProtocol); break;
      case kEndReason:
        if (auto reason = parse_end_reason(v)) r_.end_reason = *reason;
        else refuse(kEndReason, kNotEndReason);
        break;
      default: wrong_kind(); break;
    }
    return true;
  }

  bool Null() {
    if (depth_ == 2 && in_tags_) refuse(kTags, kNotTags);
    if (depth_ != 1) return true;
    switch (field_) {
      case kUserId: case kToken: case kEndedAt: case kEndReason: case kTags: case kIgnored: break;
      default: wrong_kind(); break;
    }
    return true;
  }
  bool Bool(bool) { return other_value(); }
  bool Double(double) { return other_value(); }
  // The parser calls Int/Int64 for negative numbers (and -0), Uint/Uint64 otherwise.
  bool Int(int i) { return signed_number(i); }
  bool Int64(int64_t i) { return signed_number(i); }
  bool Uint(unsigned u) { return unsigned_number(u); }
  bool Uint64(uint64_t u) { return unsigned_number(u); }

 private:
  static constexpr Field kIgnored = kFieldCount;  // an unknown or repeated name

  // Records come in encode order, so the name expected next matches in one
  // comparison; anything else is searched for. A name seen twice keeps its first value.
  Field field_named(std::string_view name) {
    std::size_t f = next_;
    if (f >= kFieldCount || kFieldNames[f] != name)
      f = static_cast<std::size_t>(std::find(std::begin(kFieldNames), std::end(kFieldNames), name) -
                                   std::begin(kFieldNames));
    if (f == kFieldCount) return kIgnored;
    next_ = f + 1;
    if (seen_ & (1u << f)) return kIgnored;
    seen_ |= 1u << f;
    return static_cast<Field>(f);
  }

  std::string& text_field(Field f) {
    switch (f) {
      case kHost: return r_.host;
      case kSessionId: return r_.session_id;
      case kStream: return r_.stream;
      case kClientIp: return r_.client_ip;
      case kUserAgent: return r_.user_agent;
      default: return r_.referer;
    }
  }

  bool enter() {
    if (++depth_ > kMaxDepth) too_deep_ = true;
    return !too_deep_;
  }
  bool leave() {
    if (--depth_ == 1) field_ = kIgnored, in_tags_ = false;
    return true;
  }

  void refuse(Field f, const char* what) {
    if (!problem_[f]) problem_[f] = what;
    any_problem_ = true;
  }

  // The value's JSON type is not the field's.
  void wrong_kind() {
    switch (field_) {
      case kIgnored: return;
      case kUserId: case kToken: return refuse(field_, kNotNullableString);
      case kSeq: case kStartedAt: case kUpdatedAt: case kEndedAt: return refuse(field_, kNotInteger);
      case kBytesIn: case kBytesOut: return refuse(field_, kNotUnsigned);
      case kEndReason: return refuse(field_, kNotEndReason);
      case kTags: return refuse(field_, kNotTags);
      default: return refuse(field_, kNotString);
    }
  }

  bool other_value() {
    if (depth_ == 2 && in_tags_) refuse(kTags, kNotTags);
    if (depth_ == 1) wrong_kind();
    return true;
  }

  bool signed_number(int64_t i) {
    if (depth_ != 1) return other_value();
    if (i >= 0) return unsigned_number(static_cast<uint64_t>(i));  // -0
    if (int64_t* out = integer_field()) *out = i;
    else wrong_kind();
    return true;
  }
  bool unsigned_number(uint64_t u) {
    if (depth_ != 1) return other_value();
    if (field_ == kBytesIn) r_.bytes_in = u;
    else if (field_ == kBytesOut) r_.bytes_out = u;
    else if (int64_t* out = integer_field(); out && u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      *out = static_cast<int64_t>(u);
    else wrong_kind();
    return true;
  }
  int64_t* integer_field() {
    switch (field_) {
      case kSeq: return &r_.seq;
      case kStartedAt: return &r_.started_at;
      case kUpdatedAt: return &r_.updated_at;
      case kEndedAt: return &r_.ended_at.emplace();
      default: return nullptr;
    }
  }

  // Checked before the copy: a 10 MB user-agent is refused without being copied.
  void text(std::string& out, std::string_view v, std::size_t limit) {
    if (v.size() > limit) return refuse(field_, kTooLong);
    out.assign(v);
  }
  void nullable_text(std::optional<std::string>& out, std::string_view v) {
    if (v.size() > kMaxTextBytes) return refuse(field_, kTooLong);
    out.emplace(v);
  }
  template <class E>
  void enumeration(E& out, std::optional<E> parsed, const char* not_one_of) {
    if (parsed) out = *parsed;
    else refuse(field_, not_one_of);
  }

  void add_tag(std::string_view value) {
    // One past the limit is enough for validate_record to refuse the count; more would
    // only grow a map that is thrown away.
    if (problem_[kTags] || r_.tags.size() > kMaxTags) return;
    r_.tags.emplace(std::string(tag_key_), std::string(value));  // a repeated key keeps its first value
  }

  SessionRecord& r_;
  int depth_ = 0;
  bool root_is_object_ = false, too_deep_ = false, in_tags_ = false, any_problem_ = false;
  Field field_ = kIgnored;  // the field the next value at depth 1 is for
  std::size_t next_ = 0;    // the field expected next in encode order
  uint32_t seen_ = 0;       // bit per field: present in the line
  std::string_view tag_key_;
  std::array<const char*, kFieldCount> problem_{};
};
static_assert(kFieldCount <= 32, "RecordHandler::seen_ holds a bit per field");

}  // namespace

Status decode_record(std::string_view line, SessionRecord& r) {
  // UTF-8 is checked on the whole line at once (JSON's own syntax is ASCII): several
  // times faster than RapidJSON validating each string byte by byte while it parses.
  if (!is_valid_utf8(line)) return Error{"invalid UTF-8"};
  // Parsed in situ from a NUL-terminated copy: RapidJSON's SIMD string scanning only
  // works on such streams (a length-bounded MemoryStream goes byte by byte), and
  // escapes are decoded in place, not into a second buffer. A raw NUL is never valid
  // JSON, and would end the copy.
  if (line.find('\0') != std::string_view::npos) return Error{"malformed JSON"};
  thread_local std::string text;
  text.assign(line);
  thread_local rapidjson::Reader reader;  // its stack is kept between records
  rapidjson::InsituStringStream stream(text.data());
  RecordHandler handler(r);
  reader.Parse<rapidjson::kParseInsituFlag>(stream, handler);
  if (handler.too_deep()) return Error{"JSON nested deeper than " + std::to_string(kMaxDepth) + " levels"};
  if (reader.HasParseError()) return Error{"malformed JSON"};
  if (!handler.root_is_object()) return Error{"a record must be a JSON object"};
  if (!handler.ok()) return Error{handler.error()};
  // A \u escape can still spell a lone surrogate, which RapidJSON writes out as is.
  if (line.find("\\u") != std::string_view::npos && !has_valid_text(r)) return Error{"invalid UTF-8"};
  return validate_record(r);
}

Result<SessionRecord> decode_record(std::string_view line) {
  SessionRecord r;
  if (Status s = decode_record(line, r); !s) return Error{s.error()};
  return r;
}

}  // namespace streamtally
