// Records of the GStreamer elements reach a real streamtally-collector: one process
// with a `streamtally type=publish` element and a `streamtallyhttpsink` (sharing one
// libstreamtally context) uploads its sessions; /v1/sessions returns them with the
// bytes measured outside the plugin (a probe upstream, curl downstream).
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "gst_test_util.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using streamtally::test::ChildProcess;
using streamtally::test::TempDir;

namespace {

TEST(GstToCollector, SessionsOfBothElementsArriveAtTheCollector) {
  streamtally::gsttest::register_plugin();
  TempDir dir;
  const int collector_port = streamtally::test::free_port();
  ChildProcess::Options co;
  co.argv = {streamtally::test::build_dir() + "/collector/streamtally-collector", "--listen",
             "127.0.0.1:" + std::to_string(collector_port), "--store", "sqlite:" + dir.file("collector.db"),
             "--ingest-token", "ingest-secret"};
  co.stderr_path = dir.file("collector.err");
  ChildProcess collector(co);
  ASSERT_TRUE(streamtally::test::wait_for_port(collector_port, 10s)) << streamtally::test::read_file(co.stderr_path);
  const std::string collector_url = "http://127.0.0.1:" + std::to_string(collector_port);

  const std::string shared = " spool=" + dir.file("spool.db") + " collector=" + collector_url +
                             " collector-token=ingest-secret interim=500";
  GstElement* pipeline = gst_parse_launch(
      ("videotestsrc is-live=true num-buffers=75 ! video/x-raw,width=160,height=120,framerate=25/1 ! "
       "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! mpegtsmux name=mux ! "
       "streamtally type=publish protocol=srt stream=ingest/gst" + shared +
       " ! streamtallyhttpsink name=http port=0 stream=live/gst.ts" + shared).c_str(),
      nullptr);
  ASSERT_NE(pipeline, nullptr);
  // Ground truth for bytes_in: what leaves the muxer, counted by a probe.
  std::atomic<uint64_t> muxed{0};
  GstElement* mux = gst_bin_get_by_name(GST_BIN(pipeline), "mux");
  GstPad* mux_src = gst_element_get_static_pad(mux, "src");
  // mpegtsmux pushes buffer lists.
  const auto types = static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST);
  gst_pad_add_probe(mux_src, types, +[](GstPad*, GstPadProbeInfo* info, gpointer n) {
    auto& total = *static_cast<std::atomic<uint64_t>*>(n);
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
      total += gst_buffer_list_calculate_size(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
    } else {
      total += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
    }
    return GST_PAD_PROBE_OK;
  }, &muxed, nullptr);
  gst_object_unref(mux_src);
  gst_object_unref(mux);

  ASSERT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement* http = gst_bin_get_by_name(GST_BIN(pipeline), "http");
  int port = 0;
  g_object_get(http, "current-port", &port, nullptr);
  gst_object_unref(http);
  ASSERT_GT(port, 0);
  ChildProcess::Options o;
  o.argv = {"curl", "-s", "-o", dir.file("body.ts"), "-A", "CollectorTest-Player/1", "--max-time", "30", "-w",
            "%{size_download} %{size_header}",
            "http://127.0.0.1:" + std::to_string(port) + "/live/gst.ts?token=t-1&user=u-1"};
  o.stdout_path = dir.file("curl.out");
  ChildProcess curl(o);

  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* eos = streamtally::gsttest::pop_message(
      bus, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 30s);
  ASSERT_NE(eos, nullptr);
  EXPECT_EQ(GST_MESSAGE_TYPE(eos), GST_MESSAGE_EOS);
  gst_message_unref(eos);
  gst_object_unref(bus);
  // NULL releases the shared context: the last release flushes and uploads.
  ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_object_unref(pipeline);
  ASSERT_TRUE(curl.wait(15s).has_value());
  uint64_t size_download = 0, size_header = 0;
  std::istringstream(streamtally::test::read_file(dir.file("curl.out"))) >> size_download >> size_header;
  ASSERT_GT(size_download, 0u);

  nlohmann::json rows;
  ASSERT_TRUE(streamtally::test::wait_until([&] {
    auto r = streamtally::test::http_get(collector_url + "/v1/sessions?group=all");
    if (r.status != 200) return false;
    rows = nlohmann::json::parse(r.body)["rows"];
    int closed = 0;
    for (const auto& row : rows) closed += row["state"] == "closed";
    return closed == 2;
  }, 15s)) << rows.dump();
  for (const auto& row : rows) {
    if (row["type"] == "publish") {
      EXPECT_EQ(row["stream"], "ingest/gst");
      EXPECT_EQ(row["protocol"], "srt");
      EXPECT_EQ(row["bytes_in"].get<uint64_t>(), muxed.load());
    } else {
      EXPECT_EQ(row["stream"], "live/gst.ts");
      EXPECT_EQ(row["protocol"], "http-progressive");
      EXPECT_EQ(row["user_agent"], "CollectorTest-Player/1");
      EXPECT_EQ(row["token"], "t-1");
      EXPECT_EQ(row["user_id"], "u-1");
      EXPECT_EQ(row["bytes_out"].get<uint64_t>(), size_download + size_header);
    }
  }
}

}  // namespace
