#include "streamtally/record_codec.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

// RapidJSON's SAX writer: the record codec runs once per record on the edge (spool)
// and at the collector (ingest), so it must cost about a microsecond, not the several
// that a std::map-based DOM costs (docs/DECISIONS.md). Decoding: record_decode.cpp.
namespace streamtally {
namespace {

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

}  // namespace

void encode_record(const SessionRecord& r, std::string& out) {
  thread_local rapidjson::StringBuffer buffer;  // reused: no allocation per record
  buffer.Clear();
  if (has_valid_text(r)) {  // what the writer needs: it copies bytes through
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
