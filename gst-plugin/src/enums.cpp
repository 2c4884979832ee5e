#include "enums.h"

namespace {

// The order follows streamtally_type_t / streamtally_protocol_t; the nick is the
// wire name of SPEC.md, the name is what gst-inspect shows as explanation.
const GEnumValue kSessionTypes[] = {
    {STREAMTALLY_PLAY, "Playout: bytes count as bytes_out", "play"},
    {STREAMTALLY_PUBLISH, "Ingest: bytes count as bytes_in", "publish"},
    {0, nullptr, nullptr},
};

const GEnumValue kProtocols[] = {
    {STREAMTALLY_PROTO_RTMP, "RTMP", "rtmp"},
    {STREAMTALLY_PROTO_HLS, "HLS", "hls"},
    {STREAMTALLY_PROTO_DASH, "MPEG-DASH", "dash"},
    {STREAMTALLY_PROTO_HTTP_PROGRESSIVE, "Progressive HTTP", "http-progressive"},
    {STREAMTALLY_PROTO_HTTP_FLV, "HTTP-FLV", "http-flv"},
    {STREAMTALLY_PROTO_RTSP, "RTSP", "rtsp"},
    {STREAMTALLY_PROTO_SRT, "SRT", "srt"},
    {STREAMTALLY_PROTO_WEBRTC, "WebRTC", "webrtc"},
    {STREAMTALLY_PROTO_TCP, "Raw TCP", "tcp"},
    {STREAMTALLY_PROTO_UDP, "Raw UDP", "udp"},
    {STREAMTALLY_PROTO_OTHER, "Other", "other"},
    {0, nullptr, nullptr},
};

const char *nick_of(const GEnumValue *values, int value) {
  for (const GEnumValue *v = values; v->value_nick; ++v) {
    if (v->value == value) return v->value_nick;
  }
  return "";
}

}  // namespace

GType gst_streamtally_session_type_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstStreamtallySessionType", kSessionTypes);
    g_once_init_leave(&type, t);
  }
  return type;
}

GType gst_streamtally_protocol_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstStreamtallyProtocol", kProtocols);
    g_once_init_leave(&type, t);
  }
  return type;
}

const char *gst_streamtally_end_reason_name(streamtally_end_reason_t reason) {
  switch (reason) {
    case STREAMTALLY_END_CLIENT: return "client";
    case STREAMTALLY_END_SERVER: return "server";
    case STREAMTALLY_END_TIMEOUT: return "timeout";
    case STREAMTALLY_END_ERROR: return "error";
  }
  return "";
}

const char *gst_streamtally_session_type_name(streamtally_type_t type) {
  return nick_of(kSessionTypes, type);
}

const char *gst_streamtally_protocol_name(streamtally_protocol_t protocol) {
  return nick_of(kProtocols, protocol);
}
