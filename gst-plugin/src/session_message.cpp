#include "session_message.hpp"

#include "enums.h"

namespace streamtally::gst {

GstMessage* make_session_message(GstObject* src, const SessionSummary& s) {
  GstStructure* st = gst_structure_new(
      kSessionMessageName,                                                   //
      "session-id", G_TYPE_STRING, s.session_id.c_str(),                     //
      "type", G_TYPE_STRING, gst_streamtally_session_type_name(s.type),      //
      "protocol", G_TYPE_STRING, gst_streamtally_protocol_name(s.protocol),  //
      "stream", G_TYPE_STRING, s.stream.c_str(),                             //
      "client-ip", G_TYPE_STRING, s.client_ip.c_str(),                       //
      "bytes-in", G_TYPE_UINT64, static_cast<guint64>(s.bytes_in),           //
      "bytes-out", G_TYPE_UINT64, static_cast<guint64>(s.bytes_out),         //
      "end-reason", G_TYPE_STRING, gst_streamtally_end_reason_name(s.end_reason),
      "started-at", G_TYPE_INT64, static_cast<gint64>(s.started_at_ms),  //
      "ended-at", G_TYPE_INT64, static_cast<gint64>(s.ended_at_ms),      //
      nullptr);
  return gst_message_new_element(src, st);
}

}  // namespace streamtally::gst
