// Owning smart pointers for GLib/GStreamer handles, so no code path forgets an unref.
#pragma once

#include <gst/gst.h>

#include <memory>

namespace streamtally::gst {

struct GObjectUnref {
  void operator()(gpointer p) const noexcept {
    if (p) g_object_unref(p);
  }
};
struct GstObjectUnref {
  void operator()(gpointer p) const noexcept {
    if (p) gst_object_unref(p);
  }
};
struct GSourceDestroy {
  // Detaches the source from its main context and drops our reference.
  void operator()(GSource* s) const noexcept {
    if (s) {
      g_source_destroy(s);
      g_source_unref(s);
    }
  }
};
struct GErrorFree {
  void operator()(GError* e) const noexcept {
    if (e) g_error_free(e);
  }
};
struct GFree {
  void operator()(gpointer p) const noexcept { g_free(p); }
};
struct GstStructureFree {
  void operator()(GstStructure* s) const noexcept {
    if (s) gst_structure_free(s);
  }
};

template <class T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;
template <class T>
using GstObjectPtr = std::unique_ptr<T, GstObjectUnref>;
using GSourcePtr = std::unique_ptr<GSource, GSourceDestroy>;
using GErrorPtr = std::unique_ptr<GError, GErrorFree>;
using GCharPtr = std::unique_ptr<gchar, GFree>;
using GstStructurePtr = std::unique_ptr<GstStructure, GstStructureFree>;

}  // namespace streamtally::gst
