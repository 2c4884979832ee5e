#include "shared_config.hpp"

GST_DEBUG_CATEGORY_STATIC(streamtally_core_debug);
#define GST_CAT_DEFAULT streamtally_core_debug

namespace streamtally::gst {
namespace {

enum SharedProp : guint { kSpool = 0, kCollector, kCollectorToken, kServerId, kInterim };

constexpr auto kConfigFlags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                       GST_PARAM_MUTABLE_READY);

// libstreamtally logs from its writer/uploader threads; GStreamer's debug log is
// thread-safe, so the lines go straight to our category.
void log_to_gst(void*, streamtally_log_level_t level, const char* message) {
  GstDebugLevel gst_level = GST_LEVEL_DEBUG;
  switch (level) {
    case STREAMTALLY_LOG_ERROR: gst_level = GST_LEVEL_ERROR; break;
    case STREAMTALLY_LOG_WARN: gst_level = GST_LEVEL_WARNING; break;
    case STREAMTALLY_LOG_INFO: gst_level = GST_LEVEL_INFO; break;
    case STREAMTALLY_LOG_DEBUG: gst_level = GST_LEVEL_DEBUG; break;
  }
  GST_CAT_LEVEL_LOG(streamtally_core_debug, gst_level, nullptr, "%s", message);
}

const char* or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

}  // namespace

void init_core_log_category() {
  static gsize initialized = 0;
  if (g_once_init_enter(&initialized)) {
    GST_DEBUG_CATEGORY_INIT(streamtally_core_debug, "streamtally-core", 0,
                            "libstreamtally: spool, uploader, session tracker");
    g_once_init_leave(&initialized, 1);
  }
}

void SharedConfig::install_properties(GObjectClass* klass, guint first_id) {
  g_object_class_install_property(
      klass, first_id + kSpool,
      g_param_spec_string("spool", "Spool file",
                          "SQLite spool file where session records wait for upload (shared by every "
                          "element and process on this edge); required",
                          nullptr, kConfigFlags));
  g_object_class_install_property(
      klass, first_id + kCollector,
      g_param_spec_string("collector", "Collector URL",
                          "Base URL of streamtally-collector (batches go to URL/v1/batches); "
                          "empty: records stay in the spool for another uploader",
                          nullptr, kConfigFlags));
  g_object_class_install_property(
      klass, first_id + kCollectorToken,
      g_param_spec_string("collector-token", "Collector ingest token",
                          "Bearer token sent to the collector with every batch", nullptr,
                          kConfigFlags));
  g_object_class_install_property(
      klass, first_id + kServerId,
      g_param_spec_string("server-id", "Server id",
                          "Stable id of this edge in the records (at most 64 bytes); empty: the "
                          "UUID generated once and kept in the spool",
                          nullptr, kConfigFlags));
  g_object_class_install_property(
      klass, first_id + kInterim,
      g_param_spec_uint("interim", "Interim update interval",
                        "Milliseconds between interim updates of an open session (the first "
                        "element to use a spool+collector pair sets it for the process)",
                        100, G_MAXUINT, 60000, kConfigFlags));
}

bool SharedConfig::set_property(guint first_id, guint prop_id, const GValue* value) {
  if (prop_id < first_id || prop_id >= first_id + kPropertyCount) return false;
  auto text = [value] {
    const gchar* s = g_value_get_string(value);
    return std::string(s ? s : "");
  };
  switch (prop_id - first_id) {
    case kSpool: spool = text(); break;
    case kCollector: collector = text(); break;
    case kCollectorToken: collector_token = text(); break;
    case kServerId: server_id = text(); break;
    case kInterim: interim_ms = g_value_get_uint(value); break;
  }
  return true;
}

bool SharedConfig::get_property(guint first_id, guint prop_id, GValue* value) const {
  if (prop_id < first_id || prop_id >= first_id + kPropertyCount) return false;
  switch (prop_id - first_id) {
    case kSpool: g_value_set_string(value, or_null(spool)); break;
    case kCollector: g_value_set_string(value, or_null(collector)); break;
    case kCollectorToken: g_value_set_string(value, or_null(collector_token)); break;
    case kServerId: g_value_set_string(value, or_null(server_id)); break;
    case kInterim: g_value_set_uint(value, interim_ms); break;
  }
  return true;
}

int ContextRef::acquire(const SharedConfig& config) {
  release();
  init_core_log_category();
  if (config.spool.empty()) return STREAMTALLY_EINVAL;
  streamtally_config_t c{};
  c.spool_path = config.spool.c_str();
  c.collector_url = or_null(config.collector);
  c.collector_token = or_null(config.collector_token);
  c.server_id = or_null(config.server_id);
  c.interim_ms = config.interim_ms;
  c.log = log_to_gst;
  c.log_user = nullptr;
  return streamtally_ctx_create(&c, &ctx_);
}

void ContextRef::release() {
  if (ctx_) {
    streamtally_ctx_destroy(ctx_, kReleaseFlushMs);
    ctx_ = nullptr;
  }
}

const char* status_text(int status) {
  switch (status) {
    case STREAMTALLY_OK: return "ok";
    case STREAMTALLY_EINVAL: return "invalid argument";
    case STREAMTALLY_ESPOOL: return "the spool could not be opened";
    case STREAMTALLY_ENOMEM: return "out of memory";
    case STREAMTALLY_ETIMEDOUT: return "timed out";
    case STREAMTALLY_EINTERNAL: return "internal error";
  }
  return "unknown error";
}

}  // namespace streamtally::gst
