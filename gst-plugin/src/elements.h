/* Registers the plugin's elements on a plugin: used by the plugin's own init
 * (libgststreamtally.so) and by tests that register the plugin statically. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

gboolean streamtally_gst_register_elements(GstPlugin *plugin);

G_END_DECLS
