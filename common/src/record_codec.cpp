#include "streamtally/record_codec.hpp"

#include <nlohmann/json.hpp>

#include "streamtally/utf8.hpp"

namespace streamtally {
namespace {

using json = nlohmann::json;

json nullable(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }

// Field readers: each returns an error naming the field when the type is wrong.
struct Reader {
  const json& obj;
  std::string error;

  const json* field(const char* name, bool required) {
    auto it = obj.find(name);
    if (it == obj.end()) {
      if (required && error.empty()) error = std::string("missing field \"") + name + "\"";
      return nullptr;
    }
    return &*it;
  }
  void fail(const char* name, const char* what) {
    if (error.empty()) error = std::string("field \"") + name + "\" " + what;
  }

  void text(const char* name, std::string& out, std::size_t limit, bool required = false) {
    const json* v = field(name, required);
    if (!v) return;
    if (!v->is_string()) return fail(name, "must be a string");
    out = v->get<std::string>();
    if (out.size() > limit) fail(name, "is too long");
  }
  void nullable_text(const char* name, std::optional<std::string>& out) {
    const json* v = field(name, false);
    if (!v || v->is_null()) return;
    if (!v->is_string()) return fail(name, "must be a string or null");
    out = v->get<std::string>();
    if (out->size() > kMaxTextBytes) fail(name, "is too long");
  }
  void int64(const char* name, int64_t& out, bool required = true) {
    const json* v = field(name, required);
    if (!v) return;
    if (v->is_number_unsigned() && v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
      out = static_cast<int64_t>(v->get<uint64_t>());
    else if (v->is_number_integer())
      out = v->get<int64_t>();
    else
      fail(name, "must be an integer");
  }
  void uint64(const char* name, uint64_t& out) {
    const json* v = field(name, true);
    if (!v) return;
    if (!v->is_number_unsigned()) {
      if (v->is_number_integer() && v->get<int64_t>() >= 0) { out = static_cast<uint64_t>(v->get<int64_t>()); return; }
      return fail(name, "must be an unsigned integer");
    }
    out = v->get<uint64_t>();
  }
  template <class E>
  void enumeration(const char* name, E& out, std::optional<E> (*parse)(std::string_view), const char* accepted) {
    const json* v = field(name, true);
    if (!v) return;
    if (!v->is_string()) return fail(name, "must be a string");
    auto parsed = parse(v->get_ref<const std::string&>());
    if (!parsed) {
      if (error.empty()) error = std::string("field \"") + name + "\" must be one of " + accepted;
      return;
    }
    out = *parsed;
  }
};

}  // namespace

void encode_record(const SessionRecord& r, std::string& out) {
  json j = {
      {"server_id", r.server_id},
      {"host", r.host},
      {"session_id", r.session_id},
      {"seq", r.seq},
      {"state", to_string(r.state)},
      {"type", to_string(r.type)},
      {"protocol", to_string(r.protocol)},
      {"stream", r.stream},
      {"client_ip", r.client_ip},
      {"user_agent", r.user_agent},
      {"referer", r.referer},
      {"user_id", nullable(r.user_id)},
      {"token", nullable(r.token)},
      {"started_at", r.started_at},
      {"updated_at", r.updated_at},
      {"ended_at", r.ended_at ? json(*r.ended_at) : json(nullptr)},
      {"bytes_in", r.bytes_in},
      {"bytes_out", r.bytes_out},
      {"end_reason", r.end_reason == EndReason::None ? json(nullptr) : json(to_string(r.end_reason))},
  };
  if (!r.tags.empty()) j["tags"] = r.tags;
  // Invalid UTF-8 is replaced, never thrown: the edge sanitizes first, this is the backstop.
  out += j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_record(const SessionRecord& r) {
  std::string out;
  encode_record(r, out);
  return out;
}

Result<SessionRecord> decode_record(std::string_view line) {
  // nlohmann rejects ill-formed UTF-8 inside strings while parsing.
  json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (!is_valid_utf8(line)) return Error{"invalid UTF-8"};
    return Error{"malformed JSON"};
  }
  if (!j.is_object()) return Error{"a record must be a JSON object"};

  SessionRecord r;
  Reader in{j, {}};
  in.text("server_id", r.server_id, kMaxServerIdBytes, true);
  in.text("host", r.host, kMaxTextBytes);
  in.text("session_id", r.session_id, kMaxTextBytes, true);
  in.int64("seq", r.seq);
  in.enumeration("state", r.state, &parse_session_state, "open, closed");
  in.enumeration("type", r.type, &parse_session_type, "play, publish");
  in.enumeration("protocol", r.protocol, &parse_protocol,
                 "rtmp, hls, dash, http-progressive, http-flv, rtsp, srt, webrtc, tcp, udp, other");
  in.text("stream", r.stream, kMaxTextBytes);
  in.text("client_ip", r.client_ip, kMaxTextBytes);
  in.text("user_agent", r.user_agent, kMaxTextBytes);
  in.text("referer", r.referer, kMaxTextBytes);
  in.nullable_text("user_id", r.user_id);
  in.nullable_text("token", r.token);
  in.int64("started_at", r.started_at);
  in.int64("updated_at", r.updated_at);
  if (const json* v = in.field("ended_at", false); v && !v->is_null()) {
    int64_t ended = 0;
    in.int64("ended_at", ended);
    r.ended_at = ended;
  }
  in.uint64("bytes_in", r.bytes_in);
  in.uint64("bytes_out", r.bytes_out);
  if (const json* v = in.field("end_reason", false); v && !v->is_null()) {
    if (!v->is_string() || !parse_end_reason(v->get_ref<const std::string&>()))
      in.fail("end_reason", "must be null or one of client, server, timeout, error, recovered");
    else
      r.end_reason = *parse_end_reason(v->get_ref<const std::string&>());
  }
  if (const json* v = in.field("tags", false); v && !v->is_null()) {
    if (!v->is_object()) {
      in.fail("tags", "must be an object of strings");
    } else {
      for (const auto& [key, value] : v->items()) {
        if (!value.is_string()) { in.fail("tags", "must be an object of strings"); break; }
        r.tags.emplace(key, value.get<std::string>());
      }
    }
  }
  if (!in.error.empty()) return Error{in.error};
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
