#include "gst_streamtally_httpsink.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "enums.h"
#include "gobject_ptr.hpp"
#include "http_listener.hpp"
#include "session_message.hpp"
#include "shared_config.hpp"
#include "streamtally.h"

GST_DEBUG_CATEGORY(gst_streamtally_httpsink_debug);  // also used by http_listener.cpp
#define GST_CAT_DEFAULT gst_streamtally_httpsink_debug

using namespace streamtally::gst;

namespace {

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_CURRENT_PORT,
  PROP_STREAM,
  PROP_MAX_CLIENTS,
  PROP_TRUST_X_FORWARDED_FOR,
  PROP_MAX_HEADER_SIZE,
  PROP_HEADER_TIMEOUT,
  PROP_CONTENT_TYPE,
  PROP_SHARED_FIRST,  // spool, collector, collector-token, server-id, interim
};

// GstMultiHandleSinkClientStatus (gst/tcp/gstmultihandlesink.h), which the tcp
// plugin does not install as a public header.
enum MultiHandleClientStatus {
  kClientOk = 0,
  kClientClosed = 1,     // the client closed the connection
  kClientRemoved = 2,    // removed by the application or at stop
  kClientSlow = 3,       // lagged beyond the sink's limits or its timeout
  kClientError = 4,      // socket error while writing or reading
  kClientDuplicate = 5,
  kClientFlushing = 6,
};

// Closed connections and socket errors (reset, broken pipe) are the viewer going
// away; a client too slow for the sink's limits timed out; the rest is the server.
streamtally_end_reason_t end_reason_of(int status) {
  switch (status) {
    case kClientClosed:
    case kClientError: return STREAMTALLY_END_CLIENT;
    case kClientSlow: return STREAMTALLY_END_TIMEOUT;
    default: return STREAMTALLY_END_SERVER;
  }
}

struct Settings {
  std::string address = "127.0.0.1";
  int port = 8080;
  std::string stream;  // empty: any path, stream = path without its leading '/'
  guint max_clients = 0;
  bool trust_x_forwarded_for = false;
  guint max_header_size = 8192;
  guint header_timeout_ms = 10000;
  std::string content_type;  // empty: from the caps
  SharedConfig shared;
};

// One viewer: the connection we accepted (kept open until multisocketsink lets it
// go), its session and what the final record and message need.
struct HttpClient {
  GObjectPtr<GSocketConnection> connection;
  GSocket* socket = nullptr;  // owned by `connection`
  streamtally_session_t* session = nullptr;
  uint64_t head_bytes = 0;  // the response head we wrote before multisocketsink took over
  SessionSummary summary;
  bool closed = false;

  HttpClient() = default;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient() {
    if (session) streamtally_session_free(session);
  }
};

// C++ state of the element (created in _init, destroyed in _finalize).
// `mutex` guards settings, clients and content type. Lock order: multisocketsink's
// client lock may be held when we take `mutex` (client-removed), so we never call
// into multisocketsink while holding `mutex`.
struct SinkState {
  std::mutex mutex;
  Settings settings;
  std::string caps_content_type = "application/octet-stream";
  std::map<GSocket*, std::shared_ptr<HttpClient>> clients;
  ContextRef context;
  int current_port = 0;

  // Set from PLAYING->PAUSED until PLAYING again, and while stopping: removals then
  // are the server's doing (multisocketsink's unlock cancels writes in progress at
  // PLAYING->PAUSED, reporting those clients with an ERROR status).
  std::atomic<bool> stopping{false};

  // Only from state changes:
  std::unique_ptr<HttpListener> listener;
  GSourcePtr poll_source;
  GstElement* multisocketsink = nullptr;  // child of the bin
};

int64_t wall_clock_ms() { return g_get_real_time() / 1000; }

// What browsers and players expect for the common stream containers.
const char* content_type_for_caps(const GstCaps* caps) {
  if (!caps || gst_caps_is_empty(caps) || gst_caps_is_any(caps)) return "application/octet-stream";
  const char* name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  static const std::pair<const char*, const char*> kTypes[] = {
      {"video/mpegts", "video/mp2t"},   {"video/x-flv", "video/x-flv"},
      {"video/webm", "video/webm"},     {"audio/webm", "audio/webm"},
      {"video/x-matroska", "video/x-matroska"}, {"video/quicktime", "video/mp4"},
      {"audio/mpeg", "audio/mpeg"},     {"audio/ogg", "audio/ogg"},
      {"application/ogg", "application/ogg"}, {"audio/x-wav", "audio/wav"},
      {"image/jpeg", "image/jpeg"},
  };
  for (const auto& [caps_name, mime] : kTypes) {
    if (g_strcmp0(name, caps_name) == 0) return mime;
  }
  return "application/octet-stream";
}

std::string peer_ip(GSocketConnection* connection) {
  GError* raw_error = nullptr;
  GObjectPtr<GSocketAddress> remote(g_socket_connection_get_remote_address(connection, &raw_error));
  GErrorPtr error(raw_error);
  if (!remote || !G_IS_INET_SOCKET_ADDRESS(remote.get())) return "";
  GInetAddress* inet = g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(remote.get()));
  GCharPtr text(g_inet_address_to_string(inet));
  return text ? text.get() : "";
}

// With a trusted proxy in front, the client is the address that proxy appended:
// the last valid entry of X-Forwarded-For.
std::optional<std::string> forwarded_for(const HttpRequest& request) {
  std::optional<std::string> header = request.header("x-forwarded-for");
  if (!header) return std::nullopt;
  GCharPtr copy(g_strdup(header->c_str()));
  gchar** parts = g_strsplit(copy.get(), ",", -1);
  std::optional<std::string> result;
  for (guint i = g_strv_length(parts); i > 0; --i) {
    GCharPtr candidate(g_strstrip(g_strdup(parts[i - 1])));
    GInetAddress* inet = g_inet_address_new_from_string(candidate.get());
    if (inet) {
      GCharPtr canonical(g_inet_address_to_string(inet));
      g_object_unref(inet);
      result = canonical.get();
      break;
    }
  }
  g_strfreev(parts);
  return result;
}

guint64 bytes_sent_of(GstElement* multisocketsink, GSocket* socket) {
  GstStructure* raw = nullptr;
  g_signal_emit_by_name(multisocketsink, "get-stats", socket, &raw);
  GstStructurePtr stats(raw);
  guint64 sent = 0;
  if (stats) gst_structure_get_uint64(stats.get(), "bytes-sent", &sent);
  return sent;
}

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

}  // namespace

struct _GstStreamtallyHttpSink {
  GstBin parent;
  SinkState* state;
};

G_DEFINE_TYPE(GstStreamtallyHttpSink, gst_streamtally_http_sink, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(streamtallyhttpsink, "streamtallyhttpsink", GST_RANK_NONE,
                            GST_TYPE_STREAMTALLY_HTTP_SINK);

namespace {

void post_closed(GstStreamtallyHttpSink* self, const SessionSummary& summary) {
  gst_element_post_message(GST_ELEMENT(self), make_session_message(GST_OBJECT(self), summary));
}

// Closes one client's session with its final byte count (`total_sent`: multisocketsink's
// bytes-sent, read by the caller). The caller holds state->mutex and posts the
// returned summary after releasing it.
std::optional<SessionSummary> close_client_locked(HttpClient& client, uint64_t total_sent,
                                                  streamtally_end_reason_t reason) {
  if (client.closed) return std::nullopt;
  client.closed = true;
  client.summary.bytes_out = client.head_bytes + total_sent;
  client.summary.end_reason = reason;
  client.summary.ended_at_ms = wall_clock_ms();
  if (client.session) {
    streamtally_session_set_bytes(client.session, 0, client.summary.bytes_out);
    streamtally_session_close(client.session, reason);
  }
  return client.summary;
}

// multisocketsink: a client is being removed (any thread, its client lock held).
// get-stats still knows the client here, and only here.
void on_client_removed(GstElement* multisocketsink, GSocket* socket, gint status, gpointer data) {
  auto* self = static_cast<GstStreamtallyHttpSink*>(data);
  const guint64 sent = bytes_sent_of(multisocketsink, socket);
  std::optional<SessionSummary> summary;
  {
    std::lock_guard lock(self->state->mutex);
    auto it = self->state->clients.find(socket);
    if (it == self->state->clients.end()) return;
    const streamtally_end_reason_t reason =
        self->state->stopping.load() ? STREAMTALLY_END_SERVER : end_reason_of(status);
    summary = close_client_locked(*it->second, sent, reason);
  }
  if (summary) {
    GST_INFO_OBJECT(self, "client %s left (%s): %" G_GUINT64_FORMAT " bytes",
                    summary->client_ip.c_str(), gst_streamtally_end_reason_name(summary->end_reason),
                    static_cast<guint64>(summary->bytes_out));
    post_closed(self, *summary);
  }
}

// multisocketsink no longer uses the socket: now we may close the connection.
void on_client_socket_removed(GstElement*, GSocket* socket, gpointer data) {
  auto* self = static_cast<GstStreamtallyHttpSink*>(data);
  std::shared_ptr<HttpClient> gone;
  {
    std::lock_guard lock(self->state->mutex);
    auto it = self->state->clients.find(socket);
    if (it == self->state->clients.end()) return;
    gone = std::move(it->second);
    self->state->clients.erase(it);
  }
  // `gone` releases the session and closes the connection here, outside the lock.
}

// Keeps the sessions' byte counters fresh so libstreamtally's interim updates carry
// current totals (listener thread).
gboolean poll_client_bytes(gpointer data) {
  auto* self = static_cast<GstStreamtallyHttpSink*>(data);
  std::vector<std::shared_ptr<HttpClient>> snapshot;
  {
    std::lock_guard lock(self->state->mutex);
    for (auto& [socket, client] : self->state->clients) snapshot.push_back(client);
  }
  for (auto& client : snapshot) {
    if (!client->session) continue;
    const guint64 sent = bytes_sent_of(self->state->multisocketsink, client->socket);
    // A smaller value than counted (client already gone) is ignored by the library.
    if (sent > 0) streamtally_session_set_bytes(client->session, 0, client->head_bytes + sent);
  }
  return G_SOURCE_CONTINUE;
}

// Listener thread: a complete request. Answers errors itself; for the stream it
// writes the response head, opens the session and gives the socket to
// multisocketsink.
void handle_request(GstStreamtallyHttpSink* self, GSocketConnection* connection,
                    const HttpRequest& request) {
  SinkState& st = *self->state;
  GSocket* socket = g_socket_connection_get_socket(connection);
  const bool head_only = request.method == "HEAD";
  if (request.method != "GET" && !head_only) {
    send_response_head(socket, simple_response(405, "Method Not Allowed", "Allow: GET, HEAD\r\n"));
    return;
  }
  std::string stream;
  std::string content_type;
  bool trust_xff = false;
  {
    std::lock_guard lock(st.mutex);
    const Settings& s = st.settings;
    std::string configured = s.stream;
    if (!configured.empty() && configured.front() == '/') configured.erase(0, 1);
    std::string requested = request.path.substr(1);
    if (!configured.empty() && requested != configured) {
      send_response_head(socket, simple_response(404, "Not Found"));
      GST_INFO_OBJECT(self, "404 for path %s", request.path.c_str());
      return;
    }
    stream = configured.empty() ? requested : configured;
    if (s.max_clients > 0 && st.clients.size() >= s.max_clients) {
      send_response_head(socket, simple_response(503, "Service Unavailable", "Retry-After: 5\r\n"));
      GST_INFO_OBJECT(self, "503: max-clients %u reached", s.max_clients);
      return;
    }
    content_type = s.content_type.empty() ? st.caps_content_type : s.content_type;
    trust_xff = s.trust_x_forwarded_for;
  }

  // HTTP/1.x without a length: the body ends when we close the connection.
  std::string head = "HTTP/1." + std::to_string(request.version_minor) + " 200 OK\r\n";
  head += "Content-Type: " + content_type + "\r\n";
  head += "Cache-Control: no-cache, no-store\r\nConnection: close\r\n\r\n";
  if (head_only) {
    send_response_head(socket, head);
    return;
  }

  auto client = std::make_shared<HttpClient>();
  client->connection.reset(G_SOCKET_CONNECTION(g_object_ref(connection)));
  client->socket = socket;
  client->head_bytes = head.size();
  std::string ip = peer_ip(connection);
  if (trust_xff) {
    if (auto forwarded = forwarded_for(request)) ip = *forwarded;
  }
  std::optional<std::string> token = request.query_arg("token");
  std::optional<std::string> user = request.query_arg("user");
  std::string user_agent = request.header("user-agent").value_or("");
  std::string referer = request.header("referer").value_or("");

  if (!send_response_head(socket, head)) return;  // the client is already gone

  SessionSummary& summary = client->summary;
  summary.type = STREAMTALLY_PLAY;
  summary.protocol = STREAMTALLY_PROTO_HTTP_PROGRESSIVE;
  summary.stream = stream;
  summary.client_ip = ip;
  summary.started_at_ms = wall_clock_ms();
  if (st.context) {
    streamtally_session_info_t info{};
    info.type = STREAMTALLY_PLAY;
    info.protocol = STREAMTALLY_PROTO_HTTP_PROGRESSIVE;
    info.stream = c_str_view(stream);
    info.client_ip = c_str_view(ip);
    info.user_agent = c_str_view(user_agent);
    info.referer = c_str_view(referer);
    info.user_id = c_str_view(user);
    info.token = c_str_view(token);
    info.started_at_ms = summary.started_at_ms;
    if (streamtally_session_open(st.context.get(), &info, &client->session) == STREAMTALLY_OK) {
      summary.session_id = streamtally_session_id(client->session);
      streamtally_session_set_bytes(client->session, 0, client->head_bytes);
    } else {
      client->session = nullptr;
      GST_WARNING_OBJECT(self, "could not open a session for %s", ip.c_str());
    }
  }
  {
    std::lock_guard lock(st.mutex);
    st.clients[socket] = client;
  }
  GST_INFO_OBJECT(self, "client %s on /%s (session %s)", ip.c_str(), stream.c_str(),
                  summary.session_id.c_str());
  g_signal_emit_by_name(st.multisocketsink, "add", socket);
}

// Tracks the caps to answer with the right Content-Type.
GstPadProbeReturn on_sink_event(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* self = static_cast<GstStreamtallyHttpSink*>(data);
  GstEvent* event = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps* caps = nullptr;
    gst_event_parse_caps(event, &caps);
    std::lock_guard lock(self->state->mutex);
    self->state->caps_content_type = content_type_for_caps(caps);
  }
  return GST_PAD_PROBE_OK;
}

bool start_serving(GstStreamtallyHttpSink* self) {
  SinkState& st = *self->state;
  Settings settings;
  {
    std::lock_guard lock(st.mutex);
    settings = st.settings;
  }
  if (!st.multisocketsink) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("multisocketsink is missing"),
                      ("install gstreamer1.0-plugins-base (the tcp plugin)"));
    return false;
  }
  if (settings.shared.spool.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No spool file set"),
                      ("set the `spool` property to the SQLite spool file of this edge"));
    return false;
  }
  st.stopping = false;
  int rc = st.context.acquire(settings.shared);
  if (rc != STREAMTALLY_OK) {
    // Serving must not depend on accounting: warn and serve without sessions.
    GST_ELEMENT_WARNING(self, RESOURCE, OPEN_READ_WRITE, ("Could not open the StreamTally spool"),
                        ("spool %s: %s; serving without accounting", settings.shared.spool.c_str(),
                         status_text(rc)));
  }
  HttpListenerOptions options;
  options.address = settings.address;
  options.port = settings.port;
  options.max_head_bytes = settings.max_header_size;
  options.head_timeout = std::chrono::milliseconds(settings.header_timeout_ms);
  std::string error;
  st.listener = HttpListener::start(
      options,
      [self](GSocketConnection* connection, const HttpRequest& request) {
        handle_request(self, connection, request);
      },
      error);
  if (!st.listener) {
    st.context.release();
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not listen for HTTP clients"), ("%s", error.c_str()));
    return false;
  }
  {
    std::lock_guard lock(st.mutex);
    st.current_port = st.listener->port();
  }
  g_object_notify(G_OBJECT(self), "current-port");
  // Interim records carry the totals of the last poll: poll well within the interval.
  const guint poll_ms = std::clamp(settings.shared.interim_ms / 2, 100u, 1000u);
  st.poll_source.reset(g_timeout_source_new(poll_ms));
  g_source_set_callback(st.poll_source.get(), poll_client_bytes, self, nullptr);
  g_source_attach(st.poll_source.get(), st.listener->context());
  GST_INFO_OBJECT(self, "serving HTTP on %s:%d", settings.address.c_str(), st.listener->port());
  return true;
}

// Before multisocketsink stops: no new clients, then remove every client with
// `clear` so `client-removed` reports each one's exact final count (multisocketsink's
// own stop frees its clients without that signal, and cancels writes in progress).
void stop_accepting(GstStreamtallyHttpSink* self) {
  SinkState& st = *self->state;
  st.stopping = true;
  st.poll_source.reset();
  st.listener.reset();
  poll_client_bytes(self);  // a fallback count for anyone `clear` might not report
  if (st.multisocketsink) g_signal_emit_by_name(st.multisocketsink, "clear");
}

// After multisocketsink stopped: clients it did not report are closed by us.
void close_remaining(GstStreamtallyHttpSink* self) {
  SinkState& st = *self->state;
  std::vector<SessionSummary> summaries;
  std::map<GSocket*, std::shared_ptr<HttpClient>> remaining;
  {
    std::lock_guard lock(st.mutex);
    remaining.swap(st.clients);
    for (auto& [socket, client] : remaining) {
      uint64_t in = 0, out = 0;
      if (client->session) streamtally_session_bytes(client->session, &in, &out);
      uint64_t sent = out > client->head_bytes ? out - client->head_bytes : 0;
      if (auto summary = close_client_locked(*client, sent, STREAMTALLY_END_SERVER)) {
        summaries.push_back(*summary);
      }
    }
  }
  for (const auto& summary : summaries) post_closed(self, summary);
  remaining.clear();
  st.context.release();
}

GstStateChangeReturn gst_streamtally_http_sink_change_state(GstElement* element,
                                                            GstStateChange transition) {
  auto* self = GST_STREAMTALLY_HTTP_SINK(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    if (!start_serving(self)) return GST_STATE_CHANGE_FAILURE;
  } else if (transition == GST_STATE_CHANGE_PLAYING_TO_PAUSED) {
    self->state->stopping = true;
  } else if (transition == GST_STATE_CHANGE_PAUSED_TO_PLAYING) {
    self->state->stopping = false;
  } else if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    stop_accepting(self);
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_streamtally_http_sink_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY ||
      (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE)) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) stop_accepting(self);
    close_remaining(self);
  }
  return ret;
}

void gst_streamtally_http_sink_set_property(GObject* object, guint prop_id, const GValue* value,
                                            GParamSpec* pspec) {
  auto* self = GST_STREAMTALLY_HTTP_SINK(object);
  std::lock_guard lock(self->state->mutex);
  Settings& s = self->state->settings;
  if (s.shared.set_property(PROP_SHARED_FIRST, prop_id, value)) return;
  auto text = [value] {
    const gchar* v = g_value_get_string(value);
    return std::string(v ? v : "");
  };
  switch (prop_id) {
    case PROP_ADDRESS: s.address = text(); break;
    case PROP_PORT: s.port = g_value_get_int(value); break;
    case PROP_STREAM: s.stream = text(); break;
    case PROP_MAX_CLIENTS: s.max_clients = g_value_get_uint(value); break;
    case PROP_TRUST_X_FORWARDED_FOR: s.trust_x_forwarded_for = g_value_get_boolean(value); break;
    case PROP_MAX_HEADER_SIZE: s.max_header_size = g_value_get_uint(value); break;
    case PROP_HEADER_TIMEOUT: s.header_timeout_ms = g_value_get_uint(value); break;
    case PROP_CONTENT_TYPE: s.content_type = text(); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

void gst_streamtally_http_sink_get_property(GObject* object, guint prop_id, GValue* value,
                                            GParamSpec* pspec) {
  auto* self = GST_STREAMTALLY_HTTP_SINK(object);
  std::lock_guard lock(self->state->mutex);
  const Settings& s = self->state->settings;
  if (s.shared.get_property(PROP_SHARED_FIRST, prop_id, value)) return;
  switch (prop_id) {
    case PROP_ADDRESS: g_value_set_string(value, s.address.c_str()); break;
    case PROP_PORT: g_value_set_int(value, s.port); break;
    case PROP_CURRENT_PORT: g_value_set_int(value, self->state->current_port); break;
    case PROP_STREAM: g_value_set_string(value, s.stream.c_str()); break;
    case PROP_MAX_CLIENTS: g_value_set_uint(value, s.max_clients); break;
    case PROP_TRUST_X_FORWARDED_FOR: g_value_set_boolean(value, s.trust_x_forwarded_for); break;
    case PROP_MAX_HEADER_SIZE: g_value_set_uint(value, s.max_header_size); break;
    case PROP_HEADER_TIMEOUT: g_value_set_uint(value, s.header_timeout_ms); break;
    case PROP_CONTENT_TYPE:
      g_value_set_string(value, s.content_type.empty() ? nullptr : s.content_type.c_str());
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

void gst_streamtally_http_sink_finalize(GObject* object) {
  auto* self = GST_STREAMTALLY_HTTP_SINK(object);
  delete self->state;
  self->state = nullptr;
  G_OBJECT_CLASS(gst_streamtally_http_sink_parent_class)->finalize(object);
}

}  // namespace

static void gst_streamtally_http_sink_class_init(GstStreamtallyHttpSinkClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_streamtally_httpsink_debug, "streamtallyhttpsink", 0,
                          "StreamTally HTTP sink: per-client sessions");

  gobject_class->set_property = gst_streamtally_http_sink_set_property;
  gobject_class->get_property = gst_streamtally_http_sink_get_property;
  gobject_class->finalize = gst_streamtally_http_sink_finalize;

  const auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                    GST_PARAM_MUTABLE_READY);
  const auto live_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_ADDRESS,
      g_param_spec_string("address", "Address",
                          "IP address to listen on (0.0.0.0 or :: for every interface)", "127.0.0.1",
                          ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_PORT,
      g_param_spec_int("port", "Port", "TCP port to listen on (0: any free port, see current-port)", 0,
                       65535, 8080, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_CURRENT_PORT,
      g_param_spec_int("current-port", "Current port", "The port listened on while PAUSED or PLAYING",
                       0, 65535, 0,
                       static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_STREAM,
      g_param_spec_string("stream", "Stream",
                          "Stream name; served at /<stream> (other paths: 404) and written in each "
                          "session. Empty: any path, the stream being the path without its '/'",
                          nullptr, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_CLIENTS,
      g_param_spec_uint("max-clients", "Max clients",
                        "Clients served at once; more get 503 (0: unlimited)", 0, G_MAXUINT, 0,
                        live_flags));
  g_object_class_install_property(
      gobject_class, PROP_TRUST_X_FORWARDED_FOR,
      g_param_spec_boolean("trust-x-forwarded-for", "Trust X-Forwarded-For",
                           "Take the client IP from the last X-Forwarded-For entry (only behind a "
                           "proxy you run)",
                           FALSE, live_flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_HEADER_SIZE,
      g_param_spec_uint("max-header-size", "Max header size",
                        "Largest request head accepted, in bytes; larger gets 431", 256, 1048576,
                        8192, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_HEADER_TIMEOUT,
      g_param_spec_uint("header-timeout", "Header timeout",
                        "Milliseconds a client has to send its whole request head; slower gets 408",
                        100, 3600000, 10000, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_CONTENT_TYPE,
      g_param_spec_string("content-type", "Content-Type",
                          "Content-Type of the responses; unset: derived from the caps (video/mpegts "
                          "-> video/mp2t, ...)",
                          nullptr, live_flags));
  SharedConfig::install_properties(gobject_class, PROP_SHARED_FIRST);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(
      element_class, "StreamTally HTTP sink", "Sink/Network",
      "Serves a stream over progressive HTTP to many clients and records one StreamTally session "
      "per client (IP, User-Agent, Referer, ?token=, ?user=, bytes)",
      "StreamTally");
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_streamtally_http_sink_change_state);
}

static void gst_streamtally_http_sink_init(GstStreamtallyHttpSink* self) {
  self->state = new SinkState();
  GstElement* sink = gst_element_factory_make("multisocketsink", "sink");
  if (!sink) {
    // The tcp plugin (gstreamer1.0-plugins-base) is missing: fail at state change.
    GST_ERROR_OBJECT(self, "multisocketsink not available (install gstreamer1.0-plugins-base)");
    return;
  }
  self->state->multisocketsink = sink;
  gst_bin_add(GST_BIN(self), sink);
  g_signal_connect(sink, "client-removed", G_CALLBACK(on_client_removed), self);
  g_signal_connect(sink, "client-socket-removed", G_CALLBACK(on_client_socket_removed), self);

  GstPad* target = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(target, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_sink_event, self, nullptr);
  GstPadTemplate* templ = gst_static_pad_template_get(&sink_template);
  GstPad* ghost = gst_ghost_pad_new_from_template("sink", target, templ);
  gst_object_unref(templ);
  gst_object_unref(target);
  gst_element_add_pad(GST_ELEMENT(self), ghost);
}
