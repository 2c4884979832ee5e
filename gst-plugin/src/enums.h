/* GEnum types of the plugin's properties, whose nicks are the record's wire names
 * ("play", "http-progressive", ...), so gst-launch lines read like the records. */
#pragma once

#include <gst/gst.h>

#include "streamtally.h"

G_BEGIN_DECLS

#define GST_TYPE_STREAMTALLY_SESSION_TYPE (gst_streamtally_session_type_get_type())
GType gst_streamtally_session_type_get_type(void);

#define GST_TYPE_STREAMTALLY_PROTOCOL (gst_streamtally_protocol_get_type())
GType gst_streamtally_protocol_get_type(void);

/* "client", "server", "timeout", "error": the record's end_reason. */
const char *gst_streamtally_end_reason_name(streamtally_end_reason_t reason);
const char *gst_streamtally_session_type_name(streamtally_type_t type);
const char *gst_streamtally_protocol_name(streamtally_protocol_t protocol);

G_END_DECLS
