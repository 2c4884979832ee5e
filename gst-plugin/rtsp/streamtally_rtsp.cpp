// streamtally_rtsp_server_attach(): a StreamTally session per RTSP client session of
// gst-rtsp-server (see include/streamtally-rtsp.h for what is recorded).
//
// Byte counts:
//  - UDP unicast: the media pipeline's multiudpsink elements know each client by
//    (destination, client port); `get-stats` gives its exact bytes-sent. It must be
//    asked before TEARDOWN removes the client, hence the `pre-teardown-request` hook.
//    A client that vanishes without TEARDOWN is removed from multiudpsink before
//    any signal tells us: its final count is the last exact one (the poller reads it
//    every interim/2, at most 1 s) plus what the stream counter below saw since.
//  - TCP-interleaved (and anything else): every client of a stream is sent every RTP
//    packet the stream produces while it plays, so a per-stream counter (a pad probe
//    on the stream's source pad) read at PLAY and at PAUSE / the end gives the
//    client's share; each packet travels in a 4-byte interleaved frame.
// Counted: RTP packets (for TCP with their frame header). Not counted: RTCP and the
// RTSP requests/responses, which are signalling, not media.
// A poller thread refreshes the totals so interim updates carry current bytes.
#include "streamtally-rtsp.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(streamtally_rtsp_debug);
#define GST_CAT_DEFAULT streamtally_rtsp_debug

namespace {

constexpr const char* kAttachmentKey = "streamtally-rtsp-attachment";
constexpr const char* kCounterKey = "streamtally-rtsp-counter";
constexpr uint64_t kInterleavedFrameBytes = 4;  // '$', channel, 16-bit length
constexpr uint64_t kDetachFlushMs = 1000;

struct GstObjectUnref {
  void operator()(gpointer p) const noexcept {
    if (p) gst_object_unref(p);
  }
};
using ElementPtr = std::unique_ptr<GstElement, GstObjectUnref>;

// RTP packets (and their bytes) a stream produced since its media was prepared.
struct StreamCounter {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> packets{0};
};

GstPadProbeReturn count_rtp(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto& counter = **static_cast<std::shared_ptr<StreamCounter>*>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    counter.bytes.fetch_add(gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info)), std::memory_order_relaxed);
    counter.packets.fetch_add(1, std::memory_order_relaxed);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList* list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    counter.bytes.fetch_add(gst_buffer_list_calculate_size(list), std::memory_order_relaxed);
    counter.packets.fetch_add(gst_buffer_list_length(list), std::memory_order_relaxed);
  }
  return GST_PAD_PROBE_OK;
}

// The counter of a stream, created (with its probe) on first use and kept on the
// stream object so every client of a shared media reads the same one.
std::shared_ptr<StreamCounter> counter_for(GstRTSPStream* stream) {
  static std::mutex install_mutex;
  std::lock_guard lock(install_mutex);
  auto* kept = static_cast<std::shared_ptr<StreamCounter>*>(g_object_get_data(G_OBJECT(stream), kCounterKey));
  if (kept) return *kept;
  auto counter = std::make_shared<StreamCounter>();
  g_object_set_data_full(G_OBJECT(stream), kCounterKey, new std::shared_ptr<StreamCounter>(counter),
                         [](gpointer p) { delete static_cast<std::shared_ptr<StreamCounter>*>(p); });
  GstPad* pad = gst_rtsp_stream_get_srcpad(stream);
  if (pad) {
    gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      count_rtp, new std::shared_ptr<StreamCounter>(counter),
                      [](gpointer p) { delete static_cast<std::shared_ptr<StreamCounter>*>(p); });
    gst_object_unref(pad);
  }
  return counter;
}

// How one stream of the media reaches this client.
struct Leg {
  bool udp_unicast = false;
  uint64_t frame_bytes = 0;      // per packet on the wire besides RTP: 4 for TCP-interleaved
  std::string host;
  int rtp_port = 0;
  std::shared_ptr<StreamCounter> counter;
  uint64_t bytes_at_play = 0;    // counter values when the client last started playing
  uint64_t packets_at_play = 0;
  uint64_t counted_before = 0;   // bytes of earlier PLAY..PAUSE spans
  bool playing = true;
  // UDP: the last exact count multiudpsink gave, and counted_now() at that moment.
  std::optional<uint64_t> udp_stats;
  uint64_t counted_at_udp_stats = 0;

  // The client's share of the stream counter (PLAY..PAUSE spans).
  uint64_t counted_now() const {
    if (!counter || !playing) return counted_before;
    uint64_t bytes = counter->bytes.load(std::memory_order_relaxed) - bytes_at_play;
    uint64_t packets = counter->packets.load(std::memory_order_relaxed) - packets_at_play;
    return counted_before + bytes + packets * frame_bytes;
  }
  // UDP without stats (the client left multiudpsink): the last exact count plus what
  // the counter saw since.
  uint64_t udp_estimate() const {
    return udp_stats ? *udp_stats + (counted_now() - counted_at_udp_stats) : counted_now();
  }
  void pause() {
    counted_before = counted_now();
    playing = false;
  }
  void resume() {
    if (playing || !counter) return;
    bytes_at_play = counter->bytes.load(std::memory_order_relaxed);
    packets_at_play = counter->packets.load(std::memory_order_relaxed);
    playing = true;
  }
};

// One RTSP session of one client: a StreamTally session.
struct Viewer {
  streamtally_session_t* session = nullptr;
  std::string rtsp_session_id;
  ElementPtr pipeline;  // the media's pipeline, holding the multiudpsinks
  std::mutex legs_mutex;  // PAUSE/PLAY (client threads) vs the poller and closing
  std::vector<Leg> legs;
  bool closed = false;

  Viewer() = default;
  Viewer(const Viewer&) = delete;
  Viewer& operator=(const Viewer&) = delete;
  ~Viewer() {
    if (session) streamtally_session_free(session);
  }
};

// True when multiudpsink's `clients` ("host:port,host:port,...") lists this client.
bool sink_has_client(GstElement* sink, const std::string& host, int port) {
  gchar* clients = nullptr;
  g_object_get(sink, "clients", &clients, nullptr);
  const std::string wanted = host + ":" + std::to_string(port);
  bool found = false;
  if (clients) {
    gchar** entries = g_strsplit(clients, ",", -1);
    for (gchar** e = entries; *e && !found; ++e) found = wanted == *e;
    g_strfreev(entries);
    g_free(clients);
  }
  return found;
}

// bytes-sent of (host, port) in the pipeline's multiudpsink; nullopt when no sink
// has that client (any more).
std::optional<uint64_t> udp_bytes_sent(GstElement* pipeline, const std::string& host, int port) {
  if (!pipeline || port <= 0) return std::nullopt;
  std::optional<uint64_t> total;
  GstIterator* it = gst_bin_iterate_all_by_element_factory_name(GST_BIN(pipeline), "multiudpsink");
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto* sink = GST_ELEMENT(g_value_get_object(&item));
    if (!sink_has_client(sink, host, port)) {  // asking a sink that lacks it logs a warning
      g_value_reset(&item);
      continue;
    }
    GstStructure* stats = nullptr;
    g_signal_emit_by_name(sink, "get-stats", host.c_str(), port, &stats);
    if (stats) {
      guint64 sent = 0;
      if (gst_structure_get_uint64(stats, "bytes-sent", &sent)) total = total.value_or(0) + sent;
      gst_structure_free(stats);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  return total;
}

// The bytes sent to this viewer so far (see the file comment); UDP legs remember
// each exact count for the case the client leaves multiudpsink unannounced.
uint64_t bytes_sent_to(Viewer& viewer) {
  std::lock_guard lock(viewer.legs_mutex);
  uint64_t total = 0;
  for (Leg& leg : viewer.legs) {
    if (!leg.udp_unicast) {
      total += leg.counted_now();
      continue;
    }
    if (auto sent = udp_bytes_sent(viewer.pipeline.get(), leg.host, leg.rtp_port)) {
      leg.udp_stats = sent;
      leg.counted_at_udp_stats = leg.counted_now();
      total += *sent;
    } else {
      total += leg.udp_estimate();
    }
  }
  return total;
}

struct ClientState {
  GstRTSPClient* client = nullptr;  // referenced while we track it
  std::string ip;
  std::map<std::string, std::shared_ptr<Viewer>> viewers;  // by RTSP session id
};

struct Attachment {
  GstRTSPServer* server = nullptr;  // not owned: we live on it
  streamtally_ctx_t* ctx = nullptr;
  gulong client_connected_handler = 0;
  std::chrono::milliseconds poll_interval{1000};

  std::mutex mutex;
  std::map<GstRTSPClient*, ClientState> clients;
  bool stopping = false;
  std::condition_variable wake;
  std::thread poller;
};

void close_viewer(Viewer& viewer, streamtally_end_reason_t reason) {
  if (viewer.closed) return;
  viewer.closed = true;
  if (viewer.session) {
    streamtally_session_set_bytes(viewer.session, 0, bytes_sent_to(viewer));
    streamtally_session_close(viewer.session, reason);
    GST_INFO("RTSP session %s closed", viewer.rtsp_session_id.c_str());
  }
}

std::string stream_of(const GstRTSPUrl* uri) {
  std::string path = uri && uri->abspath ? uri->abspath : "";
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

void on_play_request(GstRTSPClient* client, GstRTSPContext* ctx, gpointer data) {
  auto* att = static_cast<Attachment*>(data);
  if (!ctx->session || !ctx->sessmedia || !ctx->media) return;
  std::string sid = gst_rtsp_session_get_sessionid(ctx->session);
  {
    std::lock_guard lock(att->mutex);
    auto it = att->clients.find(client);
    if (it == att->clients.end()) return;
    auto existing = it->second.viewers.find(sid);
    if (existing != it->second.viewers.end() && !existing->second->closed) {  // PLAY after PAUSE
      std::lock_guard legs_lock(existing->second->legs_mutex);
      for (Leg& leg : existing->second->legs) leg.resume();
      return;
    }
  }
  auto viewer = std::make_shared<Viewer>();
  viewer->rtsp_session_id = sid;
  GstElement* element = gst_rtsp_media_get_element(ctx->media);
  if (element) {
    viewer->pipeline.reset(GST_ELEMENT(gst_object_get_parent(GST_OBJECT(element))));
    gst_object_unref(element);
  }
  const guint n = gst_rtsp_media_n_streams(ctx->media);
  for (guint i = 0; i < n; ++i) {
    GstRTSPStreamTransport* st = gst_rtsp_session_media_get_transport(ctx->sessmedia, i);
    if (!st) continue;  // this stream was not SETUP
    const GstRTSPTransport* t = gst_rtsp_stream_transport_get_transport(st);
    Leg leg;
    leg.udp_unicast = t->lower_transport == GST_RTSP_LOWER_TRANS_UDP;
    leg.frame_bytes = t->lower_transport == GST_RTSP_LOWER_TRANS_TCP ? kInterleavedFrameBytes : 0;
    leg.host = t->destination ? t->destination : "";
    leg.rtp_port = t->client_port.min;
    leg.counter = counter_for(gst_rtsp_stream_transport_get_stream(st));
    leg.bytes_at_play = leg.counter->bytes.load(std::memory_order_relaxed);
    leg.packets_at_play = leg.counter->packets.load(std::memory_order_relaxed);
    viewer->legs.push_back(std::move(leg));
  }

  const gchar* user_agent = nullptr;
  if (ctx->request) gst_rtsp_message_get_header(ctx->request, GST_RTSP_HDR_USER_AGENT, const_cast<gchar**>(&user_agent), 0);
  std::string stream = stream_of(ctx->uri);
  std::string ua = user_agent ? user_agent : "";
  std::string ip;
  {
    std::lock_guard lock(att->mutex);
    auto it = att->clients.find(client);
    if (it == att->clients.end()) return;  // closed meanwhile
    ip = it->second.ip;
  }
  streamtally_tag_t tag{"rtsp_session", sid.c_str()};
  streamtally_session_info_t info{};
  info.type = STREAMTALLY_PLAY;
  info.protocol = STREAMTALLY_PROTO_RTSP;
  info.stream = {stream.data(), stream.size()};
  info.client_ip = {ip.data(), ip.size()};
  info.user_agent = {ua.data(), ua.size()};
  info.tags = &tag;
  info.n_tags = 1;
  if (streamtally_session_open(att->ctx, &info, &viewer->session) != STREAMTALLY_OK) {
    GST_WARNING("could not open a StreamTally session for %s", ip.c_str());
    viewer->session = nullptr;
    return;
  }
  GST_INFO("RTSP session %s: %s plays %s (%zu streams)", sid.c_str(), ip.c_str(), stream.c_str(),
           viewer->legs.size());
  std::lock_guard lock(att->mutex);
  auto it = att->clients.find(client);
  if (it != att->clients.end()) it->second.viewers[sid] = std::move(viewer);
}

// PAUSE: packets produced from now on are not sent to this client.
void on_pause_request(GstRTSPClient* client, GstRTSPContext* ctx, gpointer data) {
  auto* att = static_cast<Attachment*>(data);
  if (!ctx->session) return;
  std::string sid = gst_rtsp_session_get_sessionid(ctx->session);
  std::lock_guard lock(att->mutex);
  auto it = att->clients.find(client);
  if (it == att->clients.end()) return;
  auto v = it->second.viewers.find(sid);
  if (v == it->second.viewers.end()) return;
  std::lock_guard legs_lock(v->second->legs_mutex);
  for (Leg& leg : v->second->legs) leg.pause();
}

// Before TEARDOWN removes the client from multiudpsink: the last exact byte count.
GstRTSPStatusCode on_pre_teardown(GstRTSPClient* client, GstRTSPContext* ctx, gpointer data) {
  auto* att = static_cast<Attachment*>(data);
  if (!ctx->session) return GST_RTSP_STS_OK;
  std::string sid = gst_rtsp_session_get_sessionid(ctx->session);
  std::shared_ptr<Viewer> viewer;
  {
    std::lock_guard lock(att->mutex);
    auto it = att->clients.find(client);
    if (it == att->clients.end()) return GST_RTSP_STS_OK;
    auto v = it->second.viewers.find(sid);
    if (v == it->second.viewers.end()) return GST_RTSP_STS_OK;
    viewer = v->second;
    it->second.viewers.erase(v);
  }
  close_viewer(*viewer, STREAMTALLY_END_CLIENT);
  return GST_RTSP_STS_OK;  // never refuse the teardown
}

void forget_client(Attachment* att, GstRTSPClient* client, streamtally_end_reason_t reason) {
  ClientState state;
  {
    std::lock_guard lock(att->mutex);
    auto it = att->clients.find(client);
    if (it == att->clients.end()) return;
    state = std::move(it->second);
    att->clients.erase(it);
  }
  for (auto& [sid, viewer] : state.viewers) close_viewer(*viewer, reason);
  g_signal_handlers_disconnect_by_data(client, att);
  g_object_unref(client);
}

void on_client_closed(GstRTSPClient* client, gpointer data) {
  // gst-rtsp-server dropped the client's sessions (and multiudpsink its ports) before
  // it emits `closed`: UDP legs fall back to their estimate.
  forget_client(static_cast<Attachment*>(data), client, STREAMTALLY_END_CLIENT);
}

void on_client_connected(GstRTSPServer*, GstRTSPClient* client, gpointer data) {
  auto* att = static_cast<Attachment*>(data);
  std::string ip;
  if (GstRTSPConnection* connection = gst_rtsp_client_get_connection(client)) {
    const gchar* text = gst_rtsp_connection_get_ip(connection);
    ip = text ? text : "";
  }
  {
    std::lock_guard lock(att->mutex);
    ClientState& state = att->clients[client];
    state.client = GST_RTSP_CLIENT(g_object_ref(client));
    state.ip = ip;
  }
  g_signal_connect(client, "play-request", G_CALLBACK(on_play_request), att);
  g_signal_connect(client, "pause-request", G_CALLBACK(on_pause_request), att);
  g_signal_connect(client, "pre-teardown-request", G_CALLBACK(on_pre_teardown), att);
  g_signal_connect(client, "closed", G_CALLBACK(on_client_closed), att);
}

// Refreshes the open viewers' totals for interim updates.
void poll_bytes(Attachment* att) {
  std::unique_lock lock(att->mutex);
  while (!att->stopping) {
    att->wake.wait_for(lock, att->poll_interval);
    if (att->stopping) break;
    std::vector<std::shared_ptr<Viewer>> snapshot;
    for (auto& [client, state] : att->clients) {
      for (auto& [sid, viewer] : state.viewers) snapshot.push_back(viewer);
    }
    lock.unlock();
    for (auto& viewer : snapshot) {
      if (viewer->session && !viewer->closed) {
        streamtally_session_set_bytes(viewer->session, 0, bytes_sent_to(*viewer));
      }
    }
    lock.lock();
  }
}

void destroy_attachment(gpointer data) {
  auto* att = static_cast<Attachment*>(data);
  {
    std::lock_guard lock(att->mutex);
    att->stopping = true;
  }
  att->wake.notify_all();
  if (att->poller.joinable()) att->poller.join();
  if (att->client_connected_handler) g_signal_handler_disconnect(att->server, att->client_connected_handler);
  std::vector<GstRTSPClient*> clients;
  {
    std::lock_guard lock(att->mutex);
    for (auto& [client, state] : att->clients) clients.push_back(client);
  }
  for (GstRTSPClient* client : clients) forget_client(att, client, STREAMTALLY_END_SERVER);
  streamtally_ctx_destroy(att->ctx, kDetachFlushMs);
  delete att;
}

}  // namespace

extern "C" int streamtally_rtsp_server_attach(GstRTSPServer* server, const streamtally_config_t* config) {
  if (!server || !config || !config->spool_path || !*config->spool_path) return STREAMTALLY_EINVAL;
  static gsize debug_initialized = 0;
  if (g_once_init_enter(&debug_initialized)) {
    GST_DEBUG_CATEGORY_INIT(streamtally_rtsp_debug, "streamtallyrtsp", 0, "StreamTally RTSP server sessions");
    g_once_init_leave(&debug_initialized, 1);
  }
  if (g_object_get_data(G_OBJECT(server), kAttachmentKey)) return STREAMTALLY_EINVAL;
  std::unique_ptr<Attachment> att;
  try {
    att = std::make_unique<Attachment>();
  } catch (...) {
    return STREAMTALLY_ENOMEM;
  }
  int rc = streamtally_ctx_create(config, &att->ctx);
  if (rc != STREAMTALLY_OK) return rc;
  const uint64_t interim = config->interim_ms ? config->interim_ms : 60000;
  att->poll_interval = std::chrono::milliseconds(std::clamp<uint64_t>(interim / 2, 100, 1000));
  att->server = server;
  try {
    Attachment* raw = att.get();
    att->poller = std::thread([raw] { poll_bytes(raw); });
  } catch (...) {  // the thread could not start
    streamtally_ctx_destroy(att->ctx, 0);
    return STREAMTALLY_EINTERNAL;
  }
  att->client_connected_handler =
      g_signal_connect(server, "client-connected", G_CALLBACK(on_client_connected), att.get());
  g_object_set_data_full(G_OBJECT(server), kAttachmentKey, att.release(), destroy_attachment);
  return STREAMTALLY_OK;
}

extern "C" void streamtally_rtsp_server_detach(GstRTSPServer* server) {
  if (!server) return;
  // Replacing the data runs destroy_attachment.
  g_object_set_data(G_OBJECT(server), kAttachmentKey, nullptr);
}
