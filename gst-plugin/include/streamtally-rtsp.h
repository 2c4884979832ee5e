/*
 * StreamTally for gst-rtsp-server: one session per RTSP client session.
 *
 * streamtally_rtsp_server_attach() hooks a GstRTSPServer so that every RTSP session
 * a client PLAYs is recorded: the mount path as `stream`, the client IP, its
 * User-Agent, the RTSP session id (tag `rtsp_session`), `protocol "rtsp"`, and the
 * bytes sent to that client — for UDP from the media's multiudpsink `get-stats`
 * (exact, per client), for TCP-interleaved by counting the RTP packets of each stream
 * while the client played (plus 4 bytes of interleaved framing per packet). The
 * session closes on TEARDOWN ("client"), when the client connection closes
 * ("client"), or on detach ("server").
 *
 * The attachment lives as long as the server (or until detach) and holds a
 * libstreamtally context for `config` (shared per (spool, collector) in the process).
 * Call from the thread that set the server up, before clients connect.
 */
#ifndef STREAMTALLY_RTSP_H
#define STREAMTALLY_RTSP_H

#include <gst/rtsp-server/rtsp-server.h>

#include "streamtally.h"

G_BEGIN_DECLS

/* Returns STREAMTALLY_OK, or a negative streamtally_status_t (EINVAL: NULL server
 * or config without spool_path, or already attached; ESPOOL: the spool cannot be
 * opened). */
int streamtally_rtsp_server_attach(GstRTSPServer *server, const streamtally_config_t *config);

/* Closes the open sessions ("server"), flushes (bounded) and detaches. Also done
 * automatically when the server is finalized. */
void streamtally_rtsp_server_detach(GstRTSPServer *server);

G_END_DECLS

#endif /* STREAMTALLY_RTSP_H */
