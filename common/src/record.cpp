#include "streamtally/record.hpp"

#include <array>
#include <utility>

#include "streamtally/utf8.hpp"

namespace streamtally {
namespace {

template <class E, std::size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<SessionState, 2> kStates{{{SessionState::Open, "open"}, {SessionState::Closed, "closed"}}};
constexpr Names<SessionType, 2> kTypes{{{SessionType::Play, "play"}, {SessionType::Publish, "publish"}}};
constexpr Names<Protocol, 11> kProtocols{{{Protocol::Rtmp, "rtmp"},
                                          {Protocol::Hls, "hls"},
                                          {Protocol::Dash, "dash"},
                                          {Protocol::HttpProgressive, "http-progressive"},
                                          {Protocol::HttpFlv, "http-flv"},
                                          {Protocol::Rtsp, "rtsp"},
                                          {Protocol::Srt, "srt"},
                                          {Protocol::WebRtc, "webrtc"},
                                          {Protocol::Tcp, "tcp"},
                                          {Protocol::Udp, "udp"},
                                          {Protocol::Other, "other"}}};
constexpr Names<EndReason, 6> kEndReasons{{{EndReason::None, ""},
                                           {EndReason::Client, "client"},
                                           {EndReason::Server, "server"},
                                           {EndReason::Timeout, "timeout"},
                                           {EndReason::Error, "error"},
                                           {EndReason::Recovered, "recovered"}}};

template <class E, std::size_t N>
std::string_view name_of(const Names<E, N>& names, E value) {
  for (const auto& [v, name] : names)
    if (v == value) return name;
  return {};
}

template <class E, std::size_t N>
std::optional<E> value_of(const Names<E, N>& names, std::string_view name) {
  if (name.empty()) return std::nullopt;
  for (const auto& [v, n] : names)
    if (n == name) return v;
  return std::nullopt;
}

void clean(std::string& s, std::size_t limit) {
  if (s.size() > limit || !is_valid_utf8(s)) s = sanitize_utf8(s, limit);
}

}  // namespace

std::string_view to_string(SessionState v) { return name_of(kStates, v); }
std::string_view to_string(SessionType v) { return name_of(kTypes, v); }
std::string_view to_string(Protocol v) { return name_of(kProtocols, v); }
std::string_view to_string(EndReason v) { return name_of(kEndReasons, v); }
std::optional<SessionState> parse_session_state(std::string_view s) { return value_of(kStates, s); }
std::optional<SessionType> parse_session_type(std::string_view s) { return value_of(kTypes, s); }
std::optional<Protocol> parse_protocol(std::string_view s) { return value_of(kProtocols, s); }
std::optional<EndReason> parse_end_reason(std::string_view s) { return value_of(kEndReasons, s); }

bool has_valid_text(const SessionRecord& r) {
  for (const std::string* s : {&r.server_id, &r.host, &r.session_id, &r.stream, &r.client_ip, &r.user_agent,
                               &r.referer})
    if (!is_valid_utf8(*s)) return false;
  if ((r.user_id && !is_valid_utf8(*r.user_id)) || (r.token && !is_valid_utf8(*r.token))) return false;
  for (const auto& [k, v] : r.tags)
    if (!is_valid_utf8(k) || !is_valid_utf8(v)) return false;
  return true;
}

void sanitize(SessionRecord& r) {
  clean(r.server_id, kMaxServerIdBytes);
  for (std::string* s : {&r.host, &r.session_id, &r.stream, &r.client_ip, &r.user_agent, &r.referer})
    clean(*s, kMaxTextBytes);
  if (r.user_id) clean(*r.user_id, kMaxTextBytes);
  if (r.token) clean(*r.token, kMaxTextBytes);
  std::map<std::string, std::string> tags;
  for (auto& [key, value] : r.tags) {
    if (tags.size() == kMaxTags) break;
    std::string k = key, v = value;
    clean(k, kMaxTagKeyBytes);
    clean(v, kMaxTagValueBytes);
    tags.emplace(std::move(k), std::move(v));
  }
  r.tags = std::move(tags);
}

}  // namespace streamtally
