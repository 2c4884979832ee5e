#include "gst_streamtally.h"

#include <atomic>
#include <mutex>
#include <new>
#include <optional>
#include <string>

#include "enums.h"
#include "session_message.hpp"
#include "shared_config.hpp"
#include "streamtally.h"

GST_DEBUG_CATEGORY_STATIC(gst_streamtally_debug);
#define GST_CAT_DEFAULT gst_streamtally_debug

using streamtally::gst::ContextRef;
using streamtally::gst::SessionSummary;
using streamtally::gst::SharedConfig;

namespace {

enum {
  PROP_0,
  PROP_TYPE,
  PROP_PROTOCOL,
  PROP_STREAM,
  PROP_CLIENT_IP,
  PROP_USER_AGENT,
  PROP_REFERER,
  PROP_USER_ID,
  PROP_TOKEN,
  PROP_SESSION_ID,
  PROP_BYTES,
  PROP_SHARED_FIRST,  // spool, collector, collector-token, server-id, interim
};

// What the session record says about the peer; set as properties, copied into the
// session when it opens.
struct SessionSettings {
  streamtally_type_t type = STREAMTALLY_PLAY;
  streamtally_protocol_t protocol = STREAMTALLY_PROTO_OTHER;
  std::string stream;
  std::string client_ip;
  std::string user_agent;
  std::string referer;
  std::optional<std::string> user_id;  // unset: JSON null
  std::optional<std::string> token;
};

// The element's C++ state: created in _init, destroyed in _finalize (GObject
// instances are C structs, so C++ members live here).
//
// Threads: the streaming thread opens the session (first buffer), counts bytes
// and closes it on EOS; the application thread sets properties, reads `bytes` /
// `session-id` and runs start/stop (when streaming has stopped). `mutex` guards
// everything but `hot_session`, which only the streaming thread (or stop(), after
// streaming stopped) writes, so the per-buffer path takes no lock.
struct ElementState {
  std::mutex mutex;
  SessionSettings settings;
  SharedConfig shared;
  ContextRef context;

  streamtally_session_t* hot_session = nullptr;
  bool hot_publish = false;
  // An error flow return from downstream (or from negotiation) since start: the
  // session then ends with "error". Written on the streaming thread, only on errors.
  std::atomic<int> downstream_error{GST_FLOW_OK};          // the open session's type, read without the lock
  bool accounting_disabled = false;  // the spool could not be opened: pass through only

  streamtally_session_t* session = nullptr;  // owned; kept after close for `bytes`
  bool session_closed = false;
  std::string session_id;
  int64_t started_at_ms = 0;
};

constexpr auto kSessionFlags =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

int64_t wall_clock_ms() { return g_get_real_time() / 1000; }

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

}  // namespace

struct _GstStreamtally {
  GstBaseTransform parent;
  ElementState* state;
};

G_DEFINE_TYPE(GstStreamtally, gst_streamtally, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(streamtally, "streamtally", GST_RANK_NONE, GST_TYPE_STREAMTALLY);

namespace {

// Opens the session of this element on the streaming thread (first buffer after
// start or after a closed session). Returns nullptr when accounting is off.
streamtally_session_t* open_session(GstStreamtally* self) {
  ElementState& st = *self->state;
  std::unique_lock lock(st.mutex);
  if (st.accounting_disabled || !st.context) return nullptr;
  if (st.session) {  // the previous session closed on EOS; a new stream starts
    streamtally_session_free(st.session);
    st.session = nullptr;
  }
  const SessionSettings& s = st.settings;
  streamtally_session_info_t info{};
  info.type = s.type;
  info.protocol = s.protocol;
  info.stream = streamtally::gst::c_str_view(s.stream);
  info.client_ip = streamtally::gst::c_str_view(s.client_ip);
  info.user_agent = streamtally::gst::c_str_view(s.user_agent);
  info.referer = streamtally::gst::c_str_view(s.referer);
  info.user_id = streamtally::gst::c_str_view(s.user_id);
  info.token = streamtally::gst::c_str_view(s.token);
  info.started_at_ms = wall_clock_ms();
  streamtally_session_t* session = nullptr;
  int rc = streamtally_session_open(st.context.get(), &info, &session);
  if (rc != STREAMTALLY_OK) {
    st.accounting_disabled = true;
    lock.unlock();
    GST_ELEMENT_WARNING(self, RESOURCE, FAILED, ("Could not open a StreamTally session"),
                        ("streamtally_session_open: %s; passing data through without accounting",
                         streamtally::gst::status_text(rc)));
    return nullptr;
  }
  st.session = session;
  st.session_closed = false;
  st.session_id = streamtally_session_id(session);
  st.started_at_ms = info.started_at_ms;
  st.hot_publish = s.type == STREAMTALLY_PUBLISH;
  st.hot_session = session;
  GST_INFO_OBJECT(self, "session %s opened", st.session_id.c_str());
  return session;
}

// Closes the open session (idempotent) and posts `streamtally-session`.
void close_session(GstStreamtally* self, streamtally_end_reason_t reason) {
  ElementState& st = *self->state;
  SessionSummary summary;
  {
    std::lock_guard lock(st.mutex);
    if (!st.session || st.session_closed) return;
    streamtally_session_close(st.session, reason);
    st.session_closed = true;
    summary.session_id = st.session_id;
    summary.type = st.settings.type;
    summary.protocol = st.settings.protocol;
    summary.stream = st.settings.stream;
    summary.client_ip = st.settings.client_ip;
    streamtally_session_bytes(st.session, &summary.bytes_in, &summary.bytes_out);
    summary.end_reason = reason;
    summary.started_at_ms = st.started_at_ms;
    summary.ended_at_ms = wall_clock_ms();
  }
  st.hot_session = nullptr;
  GST_INFO_OBJECT(self, "session %s closed (%s): in %" G_GUINT64_FORMAT " out %" G_GUINT64_FORMAT,
                  summary.session_id.c_str(), gst_streamtally_end_reason_name(reason),
                  summary.bytes_in, summary.bytes_out);
  gst_element_post_message(GST_ELEMENT(self),
                           streamtally::gst::make_session_message(GST_OBJECT(self), summary));
}

// EOS ends the stream normally: for ingest the publisher finished ("client"), for
// playout the source we serve ended ("server").
streamtally_end_reason_t eos_reason(streamtally_type_t type) {
  return type == STREAMTALLY_PUBLISH ? STREAMTALLY_END_CLIENT : STREAMTALLY_END_SERVER;
}

// Adds what a buffer (or a whole list) carried to the open session: one relaxed
// atomic add inside libstreamtally.
inline void count_bytes(const ElementState& st, streamtally_session_t* session, uint64_t size) {
  if (st.hot_publish) {
    streamtally_session_add_bytes(session, size, 0);
  } else {
    streamtally_session_add_bytes(session, 0, size);
  }
}

// Reached through GstBaseTransform's chain only off the fast path (gst_streamtally_chain):
// the first buffer of a session, or a renegotiation.
GstFlowReturn gst_streamtally_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
  GstStreamtally* self = GST_STREAMTALLY(trans);
  ElementState& st = *self->state;
  streamtally_session_t* session = st.hot_session;
  if (G_UNLIKELY(session == nullptr)) {
    if (st.accounting_disabled) return GST_FLOW_OK;
    session = open_session(self);
    if (!session) return GST_FLOW_OK;
  }
  count_bytes(st, session, gst_buffer_get_size(buf));
  return GST_FLOW_OK;
}

gboolean gst_streamtally_sink_event(GstBaseTransform* trans, GstEvent* event) {
  GstStreamtally* self = GST_STREAMTALLY(trans);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    streamtally_type_t type;
    {
      std::lock_guard lock(self->state->mutex);
      type = self->state->settings.type;
    }
    // A source that hit a flow error posts it and then sends EOS: that stream failed.
    const bool failed = self->state->downstream_error.load(std::memory_order_relaxed) != GST_FLOW_OK;
    close_session(self, failed ? STREAMTALLY_END_ERROR : eos_reason(type));
  }
  return GST_BASE_TRANSFORM_CLASS(gst_streamtally_parent_class)->sink_event(trans, event);
}

gboolean gst_streamtally_start(GstBaseTransform* trans) {
  GstStreamtally* self = GST_STREAMTALLY(trans);
  ElementState& st = *self->state;
  SharedConfig shared;
  {
    std::lock_guard lock(st.mutex);
    shared = st.shared;
    st.accounting_disabled = false;
    st.downstream_error = GST_FLOW_OK;
  }
  if (shared.spool.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No spool file set"),
                      ("set the `spool` property to the SQLite spool file of this edge"));
    return FALSE;
  }
  int rc = st.context.acquire(shared);
  if (rc != STREAMTALLY_OK) {
    // Accounting must never take the media down: warn and pass data through.
    GST_ELEMENT_WARNING(self, RESOURCE, OPEN_READ_WRITE, ("Could not open the StreamTally spool"),
                        ("spool %s: %s; passing data through without accounting",
                         shared.spool.c_str(), streamtally::gst::status_text(rc)));
    std::lock_guard lock(st.mutex);
    st.accounting_disabled = true;
  }
  return TRUE;
}

// GstBaseTransform's chain, saved once in _init so ours can wrap it (the same for
// every instance).
GstPadChainFunction base_transform_chain = nullptr;

// Notes an error flow return from downstream: the session then ends with "error" (the
// pads' own last flow return is reset to "flushing" when they are deactivated, before
// stop() could read it). One predictable branch per buffer.
inline GstFlowReturn note_flow(GstStreamtally* self, GstFlowReturn ret) {
  if (G_UNLIKELY(ret < GST_FLOW_EOS)) {  // not-negotiated, error, not-supported
    self->state->downstream_error.store(ret, std::memory_order_relaxed);
  }
  return ret;
}

// The session to count into when a buffer may skip GstBaseTransform's chain: one is
// open and the src pad has nothing to renegotiate (the flag is read without the pad's
// lock: a renegotiation noticed one buffer late is what GstBaseTransform does too).
// For a pass-through that only counts, GstBaseTransform's chain (its stream lock, QoS
// and output bookkeeping) was most of the per-buffer cost; pushing straight to the
// src pad is what it does for a passthrough buffer in the end.
inline streamtally_session_t* fast_path_session(GstStreamtally* self) {
  streamtally_session_t* session = self->state->hot_session;
  if (G_UNLIKELY(session == nullptr || GST_PAD_NEEDS_RECONFIGURE(GST_BASE_TRANSFORM_SRC_PAD(self)))) return nullptr;
  return session;
}

// Our sink pad's chain: count and push; GstBaseTransform's chain off the fast path.
GstFlowReturn gst_streamtally_chain(GstPad* pad, GstObject* parent, GstBuffer* buffer) {
  // The pad's parent is always this element: no checked cast on the per-buffer path.
  auto* self = reinterpret_cast<GstStreamtally*>(parent);
  streamtally_session_t* session = fast_path_session(self);
  if (G_UNLIKELY(session == nullptr)) return note_flow(self, base_transform_chain(pad, parent, buffer));
  count_bytes(*self->state, session, gst_buffer_get_size(buffer));
  return note_flow(self, gst_pad_push(GST_BASE_TRANSFORM_SRC_PAD(self), buffer));
}

// A buffer list is counted with one add and pushed whole (GstPad's default would
// call the chain once per buffer).
GstFlowReturn gst_streamtally_chain_list(GstPad* pad, GstObject* parent, GstBufferList* list) {
  auto* self = reinterpret_cast<GstStreamtally*>(parent);
  streamtally_session_t* session = fast_path_session(self);
  if (G_LIKELY(session != nullptr)) {
    count_bytes(*self->state, session, gst_buffer_list_calculate_size(list));
    return note_flow(self, gst_pad_push_list(GST_BASE_TRANSFORM_SRC_PAD(self), list));
  }
  // The first buffer opens the session; the rest then take the fast path.
  GstFlowReturn ret = GST_FLOW_OK;
  const guint n = gst_buffer_list_length(list);
  for (guint i = 0; i < n && ret == GST_FLOW_OK; ++i)
    ret = gst_streamtally_chain(pad, parent, gst_buffer_ref(gst_buffer_list_get(list, i)));
  gst_buffer_list_unref(list);
  return ret;
}

// Leaving PAUSED: close the session ("error" after an error flow return, otherwise
// the pipeline was stopped by the server), release the context.
gboolean gst_streamtally_stop(GstBaseTransform* trans) {
  GstStreamtally* self = GST_STREAMTALLY(trans);
  ElementState& st = *self->state;
  const bool failed = st.downstream_error.load(std::memory_order_relaxed) != GST_FLOW_OK;
  close_session(self, failed ? STREAMTALLY_END_ERROR : STREAMTALLY_END_SERVER);
  {
    std::lock_guard lock(st.mutex);
    st.hot_session = nullptr;
    // Keep the final bytes readable in READY: `bytes` then reads from the closed session.
  }
  st.context.release();
  return TRUE;
}

void gst_streamtally_set_property(GObject* object, guint prop_id, const GValue* value,
                                  GParamSpec* pspec) {
  GstStreamtally* self = GST_STREAMTALLY(object);
  ElementState& st = *self->state;
  std::lock_guard lock(st.mutex);
  if (st.shared.set_property(PROP_SHARED_FIRST, prop_id, value)) return;
  SessionSettings& s = st.settings;
  auto text = [value] {
    const gchar* v = g_value_get_string(value);
    return std::string(v ? v : "");
  };
  auto optional_text = [value]() -> std::optional<std::string> {
    const gchar* v = g_value_get_string(value);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  switch (prop_id) {
    case PROP_TYPE: s.type = static_cast<streamtally_type_t>(g_value_get_enum(value)); break;
    case PROP_PROTOCOL:
      s.protocol = static_cast<streamtally_protocol_t>(g_value_get_enum(value));
      break;
    case PROP_STREAM: s.stream = text(); break;
    case PROP_CLIENT_IP: s.client_ip = text(); break;
    case PROP_USER_AGENT: s.user_agent = text(); break;
    case PROP_REFERER: s.referer = text(); break;
    case PROP_USER_ID: s.user_id = optional_text(); break;
    case PROP_TOKEN: s.token = optional_text(); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

void gst_streamtally_get_property(GObject* object, guint prop_id, GValue* value,
                                  GParamSpec* pspec) {
  GstStreamtally* self = GST_STREAMTALLY(object);
  ElementState& st = *self->state;
  std::lock_guard lock(st.mutex);
  if (st.shared.get_property(PROP_SHARED_FIRST, prop_id, value)) return;
  const SessionSettings& s = st.settings;
  auto optional_text = [](const std::optional<std::string>& v) {
    return v ? v->c_str() : nullptr;
  };
  switch (prop_id) {
    case PROP_TYPE: g_value_set_enum(value, s.type); break;
    case PROP_PROTOCOL: g_value_set_enum(value, s.protocol); break;
    case PROP_STREAM: g_value_set_string(value, s.stream.c_str()); break;
    case PROP_CLIENT_IP: g_value_set_string(value, s.client_ip.c_str()); break;
    case PROP_USER_AGENT: g_value_set_string(value, s.user_agent.c_str()); break;
    case PROP_REFERER: g_value_set_string(value, s.referer.c_str()); break;
    case PROP_USER_ID: g_value_set_string(value, optional_text(s.user_id)); break;
    case PROP_TOKEN: g_value_set_string(value, optional_text(s.token)); break;
    case PROP_SESSION_ID:
      g_value_set_string(value, st.session_id.empty() ? nullptr : st.session_id.c_str());
      break;
    case PROP_BYTES: {
      uint64_t in = 0, out = 0;
      if (st.session) streamtally_session_bytes(st.session, &in, &out);
      g_value_set_uint64(value, s.type == STREAMTALLY_PUBLISH ? in : out);
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

void gst_streamtally_finalize(GObject* object) {
  GstStreamtally* self = GST_STREAMTALLY(object);
  if (self->state->session) streamtally_session_free(self->state->session);
  delete self->state;  // releases the context if stop() never ran
  self->state = nullptr;
  G_OBJECT_CLASS(gst_streamtally_parent_class)->finalize(object);
}

}  // namespace

static void gst_streamtally_class_init(GstStreamtallyClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_streamtally_debug, "streamtally", 0,
                          "StreamTally per-session accounting element");

  gobject_class->set_property = gst_streamtally_set_property;
  gobject_class->get_property = gst_streamtally_get_property;
  gobject_class->finalize = gst_streamtally_finalize;

  g_object_class_install_property(
      gobject_class, PROP_TYPE,
      g_param_spec_enum("type", "Session type",
                        "play: this element's data goes to a viewer (bytes_out); publish: it comes "
                        "from a publisher (bytes_in)",
                        GST_TYPE_STREAMTALLY_SESSION_TYPE, STREAMTALLY_PLAY, kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_PROTOCOL,
      g_param_spec_enum("protocol", "Protocol", "Delivery protocol written in the session record",
                        GST_TYPE_STREAMTALLY_PROTOCOL, STREAMTALLY_PROTO_OTHER, kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_STREAM,
      g_param_spec_string("stream", "Stream", "Stream name in the record (e.g. app/name)", nullptr,
                          kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_CLIENT_IP,
      g_param_spec_string("client-ip", "Client IP", "IPv4 or IPv6 address of the peer", nullptr,
                          kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_USER_AGENT,
      g_param_spec_string("user-agent", "User-Agent",
                          "Peer's user agent (truncated to 1024 bytes on a UTF-8 boundary)", nullptr,
                          kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_REFERER,
      g_param_spec_string("referer", "Referer", "Page the peer came from", nullptr, kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_USER_ID,
      g_param_spec_string("user-id", "User id", "Authenticated user; unset: null in the record",
                          nullptr, kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_TOKEN,
      g_param_spec_string("token", "Token", "Access token; unset: null in the record", nullptr,
                          kSessionFlags));
  g_object_class_install_property(
      gobject_class, PROP_SESSION_ID,
      g_param_spec_string("session-id", "Session id",
                          "UUID of the current (or last) session; NULL before the first buffer",
                          nullptr, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_BYTES,
      g_param_spec_uint64("bytes", "Bytes",
                          "Bytes counted in the current (or last) session: bytes_out for play, "
                          "bytes_in for publish",
                          0, G_MAXUINT64, 0,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  SharedConfig::install_properties(gobject_class, PROP_SHARED_FIRST);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "StreamTally session accounting", "Generic",
      "Pass-through that records one viewer/publisher session (bytes, stream, peer) in the "
      "StreamTally spool and uploads it to the collector",
      "StreamTally");

  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_streamtally_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_streamtally_sink_event);
  trans_class->start = GST_DEBUG_FUNCPTR(gst_streamtally_start);
  trans_class->stop = GST_DEBUG_FUNCPTR(gst_streamtally_stop);
  trans_class->transform_ip_on_passthrough = TRUE;

  gst_type_mark_as_plugin_api(GST_TYPE_STREAMTALLY_SESSION_TYPE, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_STREAMTALLY_PROTOCOL, static_cast<GstPluginAPIFlags>(0));
}

static void gst_streamtally_init(GstStreamtally* self) {
  // Like g_malloc, allocation failure here aborts (no exception is caught by GObject).
  self->state = new ElementState();
  // Never copies or modifies data: buffers go out exactly as they came in.
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
  GstPad* sink = GST_BASE_TRANSFORM_SINK_PAD(self);
  static gsize chain_saved = 0;
  if (g_once_init_enter(&chain_saved)) {
    base_transform_chain = GST_PAD_CHAINFUNC(sink);
    g_once_init_leave(&chain_saved, 1);
  }
  gst_pad_set_chain_function(sink, GST_DEBUG_FUNCPTR(gst_streamtally_chain));
  gst_pad_set_chain_list_function(sink, GST_DEBUG_FUNCPTR(gst_streamtally_chain_list));
}
