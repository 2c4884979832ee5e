/* streamtallyhttpsink: serves a stream over progressive HTTP to many clients, one
 * StreamTally session per client. A bin around multisocketsink (child "sink"):
 * the element accepts connections itself, parses and bounds each request, answers
 * 200 with its own response head and hands the socket to multisocketsink, whose
 * `get-stats` gives the bytes each client was sent. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_STREAMTALLY_HTTP_SINK (gst_streamtally_http_sink_get_type())
G_DECLARE_FINAL_TYPE(GstStreamtallyHttpSink, gst_streamtally_http_sink, GST, STREAMTALLY_HTTP_SINK,
                     GstBin)

GST_ELEMENT_REGISTER_DECLARE(streamtallyhttpsink);

G_END_DECLS
