// The `streamtally-session` element message every StreamTally element posts when a
// session closes (documented in docs/gstreamer.md), and helpers to open sessions
// through the C API from C++ strings.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <optional>
#include <string>

#include "streamtally.h"

namespace streamtally::gst {

inline constexpr const char* kSessionMessageName = "streamtally-session";

struct SessionSummary {
  std::string session_id;
  streamtally_type_t type = STREAMTALLY_PLAY;
  streamtally_protocol_t protocol = STREAMTALLY_PROTO_OTHER;
  std::string stream;
  std::string client_ip;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  streamtally_end_reason_t end_reason = STREAMTALLY_END_SERVER;
  int64_t started_at_ms = 0;
  int64_t ended_at_ms = 0;
};

// A new element message from `src`; the caller posts it (gst_element_post_message).
GstMessage* make_session_message(GstObject* src, const SessionSummary& summary);

// streamtally_str_t views of C++ strings (valid while the strings live).
inline streamtally_str_t c_str_view(const std::string& s) { return {s.data(), s.size()}; }
inline streamtally_str_t c_str_view(const std::optional<std::string>& s) {
  return s ? streamtally_str_t{s->data(), s->size()} : streamtally_str_t{nullptr, 0};
}

}  // namespace streamtally::gst
