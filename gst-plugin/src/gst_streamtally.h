/* streamtally: an in-place pass-through element that accounts one session per
 * element instance — opens it on the first buffer, counts every buffer's size (one
 * relaxed atomic add), lets libstreamtally send interim updates, and closes it on
 * EOS or when the element leaves PAUSED, posting a `streamtally-session` message. */
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_STREAMTALLY (gst_streamtally_get_type())
G_DECLARE_FINAL_TYPE(GstStreamtally, gst_streamtally, GST, STREAMTALLY, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE(streamtally);

G_END_DECLS
