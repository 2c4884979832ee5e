// libgststreamtally.so: the GStreamer plugin `streamtally` (see docs/gstreamer.md).
#include <gst/gst.h>

#include "elements.h"

#ifndef PACKAGE
#define PACKAGE "streamtally"
#endif

static gboolean plugin_init(GstPlugin *plugin) { return streamtally_gst_register_elements(plugin); }

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, streamtally,
                  "StreamTally per-session accounting: streamtally, streamtallyhttpsink",
                  plugin_init, STREAMTALLY_VERSION, "BSD", "StreamTally",
                  "https://github.com/streamtally/streamtally")
