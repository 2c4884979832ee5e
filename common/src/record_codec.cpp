#include "streamtally/record_codec.hpp"

// RapidJSON's SIMD scanning of strings and whitespace, where the target has it.
#if defined(__SSE4_2__)
#define RAPIDJSON_SSE42
#elif defined(__SSE2__)
#define RAPIDJSON_SSE2
#elif defined(__ARM_NEON)
#define RAPIDJSON_NEON
#endif
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>

#include "streamtally/utf8.hpp"

// RapidJSON's SAX writer and in-situ DOM parser: the record codec runs once per
// record on the edge (spool) and at the collector (ingest), so it must cost about a
// microsecond, not the several that a std::map-based DOM costs (docs/DECISIONS.md).
namespace streamtally {
namespace {

using Value = rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

bool put(Writer& w, const char* key, std::string_view v) {
  w.Key(key);
  return w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

bool put_nullable(Writer& w, const char* key, const std::optional<std::string>& v) {
  if (v) return put(w, key, *v);
  w.Key(key);
  return w.Null();
}

// True when every string of the record is valid UTF-8 (what the writer needs: it copies
// bytes through). One cheap pass; the edge sanitizes client strings before this.
bool all_text_valid(const SessionRecord& r) {
  for (const std::string* s : {&r.server_id, &r.host, &r.session_id, &r.stream, &r.client_ip, &r.user_agent,
                               &r.referer})
    if (!is_valid_utf8(*s)) return false;
  if ((r.user_id && !is_valid_utf8(*r.user_id)) || (r.token && !is_valid_utf8(*r.token))) return false;
  for (const auto& [k, v] : r.tags)
    if (!is_valid_utf8(k) || !is_valid_utf8(v)) return false;
  return true;
}

bool write_record(const SessionRecord& r, rapidjson::StringBuffer& buffer) {
  Writer w(buffer);
  bool ok = true;
  w.StartObject();
  ok &= put(w, "server_id", r.server_id);
  ok &= put(w, "host", r.host);
  ok &= put(w, "session_id", r.session_id);
  w.Key("seq");
  w.Int64(r.seq);
  ok &= put(w, "state", to_string(r.state));
  ok &= put(w, "type", to_string(r.type));
  ok &= put(w, "protocol", to_string(r.protocol));
  ok &= put(w, "stream", r.stream);
  ok &= put(w, "client_ip", r.client_ip);
  ok &= put(w, "user_agent", r.user_agent);
  ok &= put(w, "referer", r.referer);
  ok &= put_nullable(w, "user_id", r.user_id);
  ok &= put_nullable(w, "token", r.token);
  w.Key("started_at");
  w.Int64(r.started_at);
  w.Key("updated_at");
  w.Int64(r.updated_at);
  w.Key("ended_at");
  r.ended_at ? w.Int64(*r.ended_at) : w.Null();
  w.Key("bytes_in");
  w.Uint64(r.bytes_in);
  w.Key("bytes_out");
  w.Uint64(r.bytes_out);
  w.Key("end_reason");
  r.end_reason == EndReason::None ? w.Null() : w.String(to_string(r.end_reason).data());
  if (!r.tags.empty()) {
    w.Key("tags");
    w.StartObject();
    for (const auto& [k, v] : r.tags) {
      ok &= w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      ok &= w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndObject();
  }
  w.EndObject();
  return ok && w.IsComplete();
}

// The record's fields, in the order encode_record() writes them.
enum Field : std::size_t {
  kServerId, kHost, kSessionId, kSeq, kState, kType, kProtocol, kStream, kClientIp, kUserAgent, kReferer,
  kUserId, kToken, kStartedAt, kUpdatedAt, kEndedAt, kBytesIn, kBytesOut, kEndReason, kTags, kFieldCount
};
constexpr std::string_view kFieldNames[kFieldCount] = {
    "server_id", "host", "session_id", "seq", "state", "type", "protocol", "stream", "client_ip", "user_agent",
    "referer", "user_id", "token", "started_at", "updated_at", "ended_at", "bytes_in", "bytes_out", "end_reason",
    "tags"};

// Field readers: each records the first error, naming the field.
struct Reader {
  // One pass over the object's members, each matched against the field expected next
  // (records come in encode order, so this is one comparison a member); anything else
  // falls back to a search. A name seen twice keeps its first value; unknown names are
  // ignored. FindMember per field instead compared ~200 names a record.
  explicit Reader(const Value& obj) {
    std::size_t next = 0;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      const std::string_view name(it->name.GetString(), it->name.GetStringLength());
      std::size_t f = next;
      if (f >= kFieldCount || kFieldNames[f] != name)
        f = static_cast<std::size_t>(std::find(std::begin(kFieldNames), std::end(kFieldNames), name) -
                                     std::begin(kFieldNames));
      if (f == kFieldCount) continue;
      if (!slots[f]) slots[f] = &it->value;
      next = f + 1;
    }
  }

  std::array<const Value*, kFieldCount> slots{};
  std::string error;

  const Value* field(Field f, bool required) {
    if (!slots[f] && required && error.empty()) error = "missing field \"" + std::string(kFieldNames[f]) + "\"";
    return slots[f];
  }
  void fail(Field f, const char* what) {
    if (error.empty()) error = "field \"" + std::string(kFieldNames[f]) + "\" " + what;
  }

  void text(Field f, std::string& out, std::size_t limit, bool required = false) {
    const Value* v = field(f, required);
    if (!v) return;
    if (!v->IsString()) return fail(f, "must be a string");
    out.assign(v->GetString(), v->GetStringLength());
    if (out.size() > limit) fail(f, "is too long");
  }
  void nullable_text(Field f, std::optional<std::string>& out) {
    const Value* v = field(f, false);
    if (!v || v->IsNull()) return;
    if (!v->IsString()) return fail(f, "must be a string or null");
    out.emplace(v->GetString(), v->GetStringLength());
    if (out->size() > kMaxTextBytes) fail(f, "is too long");
  }
  void int64(Field f, int64_t& out, bool required = true) {
    const Value* v = field(f, required);
    if (!v) return;
    if (!v->IsInt64()) return fail(f, "must be an integer");
    out = v->GetInt64();
  }
  void uint64(Field f, uint64_t& out) {
    const Value* v = field(f, true);
    if (!v) return;
    if (!v->IsUint64()) return fail(f, "must be an unsigned integer");
    out = v->GetUint64();
  }
  template <class E>
  void enumeration(Field f, E& out, std::optional<E> (*parse)(std::string_view), const char* accepted) {
    const Value* v = field(f, true);
    if (!v) return;
    if (!v->IsString()) return fail(f, "must be a string");
    auto parsed = parse(std::string_view(v->GetString(), v->GetStringLength()));
    if (!parsed) {
      if (error.empty()) error = "field \"" + std::string(kFieldNames[f]) + "\" must be one of " + accepted;
      return;
    }
    out = *parsed;
  }
};

}  // namespace

void encode_record(const SessionRecord& r, std::string& out) {
  thread_local rapidjson::StringBuffer buffer;  // reused: no allocation per record
  buffer.Clear();
  if (all_text_valid(r)) {
    write_record(r, buffer);
  } else {
    // Invalid UTF-8 is replaced, never an error: the edge sanitizes first, this is the backstop.
    SessionRecord clean = r;
    sanitize(clean);
    write_record(clean, buffer);
  }
  out.append(buffer.GetString(), buffer.GetSize());
}

std::string encode_record(const SessionRecord& r) {
  std::string out;
  encode_record(r, out);
  return out;
}

Result<SessionRecord> decode_record(std::string_view line) {
  // The DOM's values and the parser's stack live in per-thread buffers that are reused:
  // a default Document mallocs and frees a 64 KiB chunk for every record. A record
  // larger than the buffers still parses (the pool then allocates).
  thread_local char value_buffer[16 * 1024];
  thread_local char stack_buffer[4 * 1024];
  rapidjson::MemoryPoolAllocator<> value_pool(value_buffer, sizeof value_buffer);
  rapidjson::MemoryPoolAllocator<> stack_pool(stack_buffer, sizeof stack_buffer);
  rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>, rapidjson::MemoryPoolAllocator<>> doc(
      &value_pool, sizeof stack_buffer, &stack_pool);
  // UTF-8 is checked on the whole line at once (JSON's own syntax is ASCII): several
  // times faster than RapidJSON validating each string byte by byte while it parses.
  if (!is_valid_utf8(line)) return Error{"invalid UTF-8"};
  // Parsed in situ from a NUL-terminated copy: RapidJSON's SIMD string scanning only
  // works on such streams (a length-bounded MemoryStream goes byte by byte), and the
  // strings are not copied twice. A raw NUL is never valid JSON, and would end the copy.
  if (line.find('\0') != std::string_view::npos) return Error{"malformed JSON"};
  thread_local std::string text;
  text.assign(line);
  doc.ParseInsitu(text.data());
  if (doc.HasParseError()) return Error{"malformed JSON"};
  if (!doc.IsObject()) return Error{"a record must be a JSON object"};

  SessionRecord r;
  Reader in(doc);
  in.text(kServerId, r.server_id, kMaxServerIdBytes, true);
  in.text(kHost, r.host, kMaxTextBytes);
  in.text(kSessionId, r.session_id, kMaxTextBytes, true);
  in.int64(kSeq, r.seq);
  in.enumeration(kState, r.state, &parse_session_state, "open, closed");
  in.enumeration(kType, r.type, &parse_session_type, "play, publish");
  in.enumeration(kProtocol, r.protocol, &parse_protocol,
                 "rtmp, hls, dash, http-progressive, http-flv, rtsp, srt, webrtc, tcp, udp, other");
  in.text(kStream, r.stream, kMaxTextBytes);
  in.text(kClientIp, r.client_ip, kMaxTextBytes);
  in.text(kUserAgent, r.user_agent, kMaxTextBytes);
  in.text(kReferer, r.referer, kMaxTextBytes);
  in.nullable_text(kUserId, r.user_id);
  in.nullable_text(kToken, r.token);
  in.int64(kStartedAt, r.started_at);
  in.int64(kUpdatedAt, r.updated_at);
  if (const Value* v = in.field(kEndedAt, false); v && !v->IsNull()) {
    int64_t ended = 0;
    in.int64(kEndedAt, ended);
    r.ended_at = ended;
  }
  in.uint64(kBytesIn, r.bytes_in);
  in.uint64(kBytesOut, r.bytes_out);
  if (const Value* v = in.field(kEndReason, false); v && !v->IsNull()) {
    auto reason = v->IsString() ? parse_end_reason(std::string_view(v->GetString(), v->GetStringLength()))
                                : std::nullopt;
    if (!reason)
      in.fail(kEndReason, "must be null or one of client, server, timeout, error, recovered");
    else
      r.end_reason = *reason;
  }
  if (const Value* v = in.field(kTags, false); v && !v->IsNull()) {
    if (!v->IsObject()) {
      in.fail(kTags, "must be an object of strings");
    } else {
      for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) {
        if (!it->value.IsString()) {
          in.fail(kTags, "must be an object of strings");
          break;
        }
        r.tags.emplace(std::string(it->name.GetString(), it->name.GetStringLength()),
                       std::string(it->value.GetString(), it->value.GetStringLength()));
      }
    }
  }
  if (!in.error.empty()) return Error{in.error};
  // A \u escape can still spell a lone surrogate, which RapidJSON writes out as is.
  if (line.find("\\u") != std::string_view::npos && !all_text_valid(r)) return Error{"invalid UTF-8"};
  if (Status s = validate_record(r); !s) return Error{s.error()};
  return r;
}

Status validate_record(const SessionRecord& r) {
  if (r.server_id.empty()) return Error{"field \"server_id\" must not be empty"};
  if (r.server_id.size() > kMaxServerIdBytes) return Error{"field \"server_id\" is too long"};
  if (r.session_id.empty()) return Error{"field \"session_id\" must not be empty"};
  if (r.seq < 0) return Error{"field \"seq\" must be >= 0"};
  if (r.started_at < 0) return Error{"field \"started_at\" must be >= 0"};
  if (r.updated_at < r.started_at) return Error{"field \"updated_at\" must be >= started_at"};
  const bool closed = r.state == SessionState::Closed;
  if (closed != r.ended_at.has_value())
    return Error{closed ? "field \"ended_at\" is required when state is closed"
                        : "field \"ended_at\" must be null while state is open"};
  if (r.ended_at && *r.ended_at < r.started_at) return Error{"field \"ended_at\" must be >= started_at"};
  if (!closed && r.end_reason != EndReason::None) return Error{"field \"end_reason\" must be null while open"};
  if (r.tags.size() > kMaxTags) return Error{"field \"tags\" has too many entries"};
  for (const auto& [k, v] : r.tags)
    if (k.empty() || k.size() > kMaxTagKeyBytes || v.size() > kMaxTagValueBytes)
      return Error{"field \"tags\" has an empty or too long key or value"};
  return Status::Ok();
}

}  // namespace streamtally
