// Records for the uploader tests and benchmark: every field of SPEC.md exercised
// (open/closed, nulls, tags, non-ASCII text, 64-bit byte counts), one distinct session
// per record so the spool's coalescing keeps them all.
#pragma once

#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "streamtally/record.hpp"
#include "streamtally/uuid.hpp"

namespace streamtally::test {

inline SessionRecord varied_record(std::size_t i, const std::string& server_id = "edge-test-1") {
  static const Protocol kProtocols[] = {Protocol::Rtmp,  Protocol::Hls,  Protocol::Dash, Protocol::HttpProgressive,
                                        Protocol::HttpFlv, Protocol::Rtsp, Protocol::Srt,  Protocol::WebRtc,
                                        Protocol::Tcp,   Protocol::Udp,  Protocol::Other};
  static const EndReason kReasons[] = {EndReason::Client, EndReason::Server, EndReason::Timeout, EndReason::Error,
                                       EndReason::Recovered};
  SessionRecord r;
  r.server_id = server_id;
  r.host = "edge-" + std::to_string(i % 3) + ".example.net";
  r.session_id = make_uuid_v4();
  r.seq = static_cast<int64_t>(i % 7);
  r.type = i % 5 == 0 ? SessionType::Publish : SessionType::Play;
  r.protocol = kProtocols[i % std::size(kProtocols)];
  r.stream = "live/channel-" + std::to_string(i % 11);
  r.client_ip = i % 4 == 0 ? "2001:db8::" + std::to_string(i % 100) : "198.51.100." + std::to_string(i % 250);
  r.user_agent = i % 6 == 0 ? "Lavf/59.27.100" : "Mozilla/5.0 (Linux; Android 13) Chrome/119.0 — Wiedergabe ☃";
  r.referer = i % 2 ? "https://player.example.com/watch?v=" + std::to_string(i) : "";
  if (i % 3 == 0) r.user_id = "user-" + std::to_string(i % 97);
  if (i % 4 == 1) r.token = "tok-" + std::to_string(i);
  r.started_at = 1'763'700'000'000 + static_cast<int64_t>(i) * 1000;
  r.updated_at = r.started_at + 60'000 * r.seq;
  r.bytes_in = r.type == SessionType::Publish ? (uint64_t{1} << 33) + i : 0;  // beyond 32 bits
  r.bytes_out = 1'000'000ull * (i % 50) + i;
  if (i % 2 == 0) {
    r.state = SessionState::Closed;
    r.ended_at = r.updated_at;
    r.end_reason = kReasons[i % std::size(kReasons)];
  }
  if (i % 3 == 1) r.tags = {{"customer", "acme"}, {"région", "eu-west"}};
  return r;
}

inline std::vector<SessionRecord> varied_records(std::size_t n, std::size_t first = 0) {
  std::vector<SessionRecord> out;
  out.reserve(n);
  for (std::size_t i = first; i < first + n; ++i) out.push_back(varied_record(i));
  return out;
}

}  // namespace streamtally::test
