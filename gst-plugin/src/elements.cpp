#include "elements.h"

#include "gst_streamtally.h"
#include "gst_streamtally_httpsink.h"

gboolean streamtally_gst_register_elements(GstPlugin *plugin) {
  gboolean ok = GST_ELEMENT_REGISTER(streamtally, plugin);
  ok &= GST_ELEMENT_REGISTER(streamtallyhttpsink, plugin);
  return ok;
}
