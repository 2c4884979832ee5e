// streamtally-rtsp-server: an RTSP server for one gst-launch style media pipeline,
// with a StreamTally session per client (streamtally_rtsp_server_attach).
//
//   streamtally-rtsp-server --spool /var/lib/streamtally/spool.db
//       "( videotestsrc is-live=true ! x264enc tune=zerolatency ! rtph264pay name=pay0 pt=96 )"
//
// Prints "listening on rtsp://ADDRESS:PORT/MOUNT" once it accepts clients; SIGINT /
// SIGTERM close the open sessions ("server"), flush the spool and exit 0.
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

#include <cstdio>
#include <string>

#include "streamtally-rtsp.h"

namespace {

struct Options {
  gchar* address = nullptr;
  gint port = 8554;
  gchar* mount = nullptr;
  gchar* spool = nullptr;
  gchar* collector = nullptr;
  gchar* collector_token = nullptr;
  gchar* server_id = nullptr;
  gint interim_ms = 60000;
  gboolean shared = TRUE;
  gchar** pipeline = nullptr;

  ~Options() {
    g_free(address);
    g_free(mount);
    g_free(spool);
    g_free(collector);
    g_free(collector_token);
    g_free(server_id);
    g_strfreev(pipeline);
  }
};

gboolean quit_loop(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop*>(loop));
  return G_SOURCE_REMOVE;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  GOptionEntry entries[] = {
      {"address", 'a', 0, G_OPTION_ARG_STRING, &o.address, "Address to listen on (default 127.0.0.1)", "ADDR"},
      {"port", 'p', 0, G_OPTION_ARG_INT, &o.port, "Port to listen on (default 8554, 0: any free port)", "PORT"},
      {"mount", 'm', 0, G_OPTION_ARG_STRING, &o.mount, "Mount point (default /test)", "PATH"},
      {"spool", 's', 0, G_OPTION_ARG_FILENAME, &o.spool,
       "StreamTally spool file (default $STREAMTALLY_SPOOL, else ./streamtally-spool.db)", "FILE"},
      {"collector", 'c', 0, G_OPTION_ARG_STRING, &o.collector, "Collector base URL", "URL"},
      {"collector-token", 't', 0, G_OPTION_ARG_STRING, &o.collector_token, "Collector ingest token", "TOKEN"},
      {"server-id", 0, 0, G_OPTION_ARG_STRING, &o.server_id, "Server id in the records", "ID"},
      {"interim", 'i', 0, G_OPTION_ARG_INT, &o.interim_ms, "Interim update interval in ms (default 60000)", "MS"},
      {"shared", 0, 0, G_OPTION_ARG_NONE, &o.shared, "Share one media pipeline between clients (default)", nullptr},
      {"no-shared", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE, &o.shared, "One media pipeline per client", nullptr},
      {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &o.pipeline, "Media pipeline", "\"( PIPELINE )\""},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  GOptionContext* options = g_option_context_new(nullptr);
  g_option_context_set_summary(options,
                               "Serves a gst-launch style media pipeline over RTSP and records a StreamTally\n"
                               "session per client (stream, IP, User-Agent, RTSP session id, bytes).");
  g_option_context_add_main_entries(options, entries, nullptr);
  g_option_context_add_group(options, gst_init_get_option_group());
  GError* error = nullptr;
  const gboolean parsed = g_option_context_parse(options, &argc, &argv, &error);
  g_option_context_free(options);
  if (!parsed) {
    std::fprintf(stderr, "streamtally-rtsp-server: %s\n", error->message);
    g_error_free(error);
    return 2;
  }
  if (!o.pipeline || !o.pipeline[0]) {
    std::fprintf(stderr, "streamtally-rtsp-server: a \"( PIPELINE )\" is required (see --help)\n");
    return 2;
  }
  if (!o.spool) {
    const char* from_env = g_getenv("STREAMTALLY_SPOOL");
    o.spool = g_strdup(from_env && *from_env ? from_env : "streamtally-spool.db");
  }
  std::string launch;
  for (gchar** part = o.pipeline; *part; ++part) launch += std::string(launch.empty() ? "" : " ") + *part;
  const std::string address = o.address ? o.address : "127.0.0.1";
  const std::string mount = o.mount ? o.mount : "/test";

  GstRTSPServer* server = gst_rtsp_server_new();
  gst_rtsp_server_set_address(server, address.c_str());
  gst_rtsp_server_set_service(server, std::to_string(o.port).c_str());
  GstRTSPMediaFactory* factory = gst_rtsp_media_factory_new();
  gst_rtsp_media_factory_set_launch(factory, launch.c_str());
  gst_rtsp_media_factory_set_shared(factory, o.shared);
  GstRTSPMountPoints* mounts = gst_rtsp_server_get_mount_points(server);
  gst_rtsp_mount_points_add_factory(mounts, mount.c_str(), factory);  // takes the factory
  g_object_unref(mounts);

  streamtally_config_t config{};
  config.spool_path = o.spool;
  config.collector_url = o.collector;
  config.collector_token = o.collector_token;
  config.server_id = o.server_id;
  config.interim_ms = o.interim_ms > 0 ? static_cast<uint64_t>(o.interim_ms) : 0;
  int rc = streamtally_rtsp_server_attach(server, &config);
  if (rc != STREAMTALLY_OK) {
    std::fprintf(stderr, "streamtally-rtsp-server: cannot attach StreamTally (spool %s): error %d\n", o.spool, rc);
    g_object_unref(server);
    return 1;
  }

  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  const guint source = gst_rtsp_server_attach(server, nullptr);
  if (source == 0) {
    std::fprintf(stderr, "streamtally-rtsp-server: cannot listen on %s:%d\n", address.c_str(), o.port);
    g_main_loop_unref(loop);
    g_object_unref(server);
    return 1;
  }
  g_unix_signal_add(SIGINT, quit_loop, loop);
  g_unix_signal_add(SIGTERM, quit_loop, loop);
  std::printf("listening on rtsp://%s:%d%s (spool %s)\n", address.c_str(),
              gst_rtsp_server_get_bound_port(server), mount.c_str(), o.spool);
  std::fflush(stdout);
  g_main_loop_run(loop);

  g_source_remove(source);
  streamtally_rtsp_server_detach(server);  // closes open sessions ("server") and flushes
  g_object_unref(server);
  g_main_loop_unref(loop);
  return 0;
}
