// Record builders shared by the common tests.
#pragma once

#include <string>

#include "streamtally/record.hpp"

namespace streamtally::test {

inline SessionRecord sample_record(const std::string& session_id, int64_t seq = 0, bool closed = false) {
  SessionRecord r;
  r.server_id = "edge-1";
  r.host = "edge-1.example";
  r.session_id = session_id;
  r.seq = seq;
  r.type = SessionType::Play;
  r.protocol = Protocol::Hls;
  r.stream = "live/cam1";
  r.client_ip = "203.0.113.7";
  r.user_agent = "Mozilla/5.0 (X11; Linux x86_64)";
  r.referer = "https://example.com/player";
  r.started_at = 1'700'000'000'000;
  r.updated_at = r.started_at + seq * 60'000;
  r.bytes_out = static_cast<uint64_t>(seq) * 1'000'000;
  if (closed) {
    r.state = SessionState::Closed;
    r.ended_at = r.updated_at;
    r.end_reason = EndReason::Client;
  }
  return r;
}

}  // namespace streamtally::test
