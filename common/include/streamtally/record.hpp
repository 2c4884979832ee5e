// SessionRecord: one update of one viewer/publisher session, exactly the record of
// SPEC.md. A session is sent several times (seq 0, 1, 2 ...); the collector keeps
// the highest seq per (server_id, session_id).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace streamtally {

enum class SessionState { Open, Closed };
enum class SessionType { Play, Publish };
enum class Protocol { Rtmp, Hls, Dash, HttpProgressive, HttpFlv, Rtsp, Srt, WebRtc, Tcp, Udp, Other };
enum class EndReason { None, Client, Server, Timeout, Error, Recovered };

// Limits of SPEC.md; the edge truncates to them, the collector rejects beyond them.
inline constexpr std::size_t kMaxServerIdBytes = 64;
inline constexpr std::size_t kMaxTextBytes = 1024;      // user_agent, referer, stream, ...
inline constexpr std::size_t kMaxTags = 32;
inline constexpr std::size_t kMaxTagKeyBytes = 64;
inline constexpr std::size_t kMaxTagValueBytes = 256;

struct SessionRecord {
  std::string server_id;
  std::string host;
  std::string session_id;
  int64_t seq = 0;
  SessionState state = SessionState::Open;
  SessionType type = SessionType::Play;
  Protocol protocol = Protocol::Other;
  std::string stream;
  std::string client_ip;
  std::string user_agent;
  std::string referer;
  std::optional<std::string> user_id;
  std::optional<std::string> token;
  int64_t started_at = 0;  // ms since epoch, UTC
  int64_t updated_at = 0;
  std::optional<int64_t> ended_at;
  uint64_t bytes_in = 0;   // cumulative at this update
  uint64_t bytes_out = 0;
  EndReason end_reason = EndReason::None;  // None is JSON null
  std::map<std::string, std::string> tags;

  bool operator==(const SessionRecord&) const = default;
};

// Wire names of the enums ("play", "http-progressive", ...) and their parsers.
std::string_view to_string(SessionState);
std::string_view to_string(SessionType);
std::string_view to_string(Protocol);
std::string_view to_string(EndReason);  // "" for None
std::optional<SessionState> parse_session_state(std::string_view);
std::optional<SessionType> parse_session_type(std::string_view);
std::optional<Protocol> parse_protocol(std::string_view);
std::optional<EndReason> parse_end_reason(std::string_view);  // not for None

// Makes every string field valid UTF-8 and cuts it to the SPEC limits on a
// character boundary. The edge calls this on everything a client sent.
void sanitize(SessionRecord&);

// True when every string field (tags too) is valid UTF-8, as sanitize() leaves it.
bool has_valid_text(const SessionRecord&);

}  // namespace streamtally
