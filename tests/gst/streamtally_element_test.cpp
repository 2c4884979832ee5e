// The `streamtally` element under GstHarness: pass-through of the very same buffers,
// exact byte counts (bytes_out for play, bytes_in for publish), a session closed on
// EOS with its message, interim updates while data flows, repeated state cycles, and
// what happens when the spool is missing or unusable. Records are read back from the
// spool with libstreamtally's Spool + strict decoder.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "gst_test_util.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using streamtally::SessionRecord;
using streamtally::gsttest::latest_by_session;
using streamtally::gsttest::pop_message;
using streamtally::gsttest::pop_session_message;
using streamtally::gsttest::spool_records;
using streamtally::gsttest::wait_for_records;

namespace {

class StreamtallyHarness : public ::testing::Test {
 protected:
  void SetUp() override {
    streamtally::gsttest::register_plugin();
    element_ = gst_element_factory_make("streamtally", nullptr);
    ASSERT_NE(element_, nullptr);
    gst_object_ref_sink(element_);
    bus_ = gst_bus_new();
    gst_element_set_bus(element_, bus_);  // a harnessed element has no bus of its own
    g_object_set(element_, "spool", spool_.c_str(), nullptr);
  }
  void TearDown() override {
    if (harness_) gst_harness_teardown(harness_);
    if (element_) {
      gst_element_set_bus(element_, nullptr);
      gst_object_unref(element_);
    }
    if (bus_) gst_object_unref(bus_);
  }

  // Harnesses the configured element and starts a stream (stream-start, caps, segment).
  void start() {
    harness_ = gst_harness_new_with_element(element_, "sink", "src");
    gst_harness_set_src_caps_str(harness_, "application/x-streamtally-test");
  }
  // After a state cycle the element's pads lost their sticky events: a new stream.
  void restart_stream(const char* id) {
    gst_harness_push_event(harness_, gst_event_new_stream_start(id));
    GstCaps* caps = gst_caps_from_string("application/x-streamtally-test");
    gst_harness_push_event(harness_, gst_event_new_caps(caps));
    gst_caps_unref(caps);
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_harness_push_event(harness_, gst_event_new_segment(&segment));
  }

  // Pushes one buffer of `size` bytes; checks the very same buffer comes out.
  void push_and_check_same(gsize size) {
    GstBuffer* in = gst_buffer_new_and_alloc(size);
    GstBuffer* raw_in = in;
    ASSERT_EQ(gst_harness_push(harness_, in), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(harness_);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(out, raw_in) << "pass-through must hand on the buffer it got, never a copy";
    EXPECT_EQ(gst_buffer_get_size(out), size);
    gst_buffer_unref(out);
  }

  guint64 bytes_property() {
    guint64 bytes = 0;
    g_object_get(element_, "bytes", &bytes, nullptr);
    return bytes;
  }
  std::string session_id_property() {
    gchar* id = nullptr;
    g_object_get(element_, "session-id", &id, nullptr);
    std::string out = id ? id : "";
    g_free(id);
    return out;
  }

  streamtally::test::TempDir dir_;
  std::string spool_ = dir_.file("spool.db");
  GstElement* element_ = nullptr;
  GstBus* bus_ = nullptr;
  GstHarness* harness_ = nullptr;
};

TEST_F(StreamtallyHarness, PassesTheSameBuffersThroughAndCountsEveryByte) {
  g_object_set(element_, "stream", "live/cam1", "client-ip", "192.0.2.7", "user-agent", "VLC/3.0.18",
               "referer", "https://example.com/page", "user-id", "alice", "token", "tok-1", nullptr);
  gst_util_set_object_arg(G_OBJECT(element_), "protocol", "http-flv");
  start();
  const std::vector<gsize> sizes = {1, 188, 1316, 65536, 7};
  guint64 expected = 0;
  for (gsize size : sizes) {
    push_and_check_same(size);
    expected += size;
  }
  EXPECT_EQ(bytes_property(), expected);
  const std::string id = session_id_property();
  EXPECT_EQ(id.size(), 36u) << "a UUID once the first buffer opened the session";

  gst_harness_teardown(harness_);  // PLAYING -> NULL: the session closes with "server"
  harness_ = nullptr;

  auto latest = latest_by_session(spool_records(spool_));
  ASSERT_EQ(latest.size(), 1u);
  const SessionRecord& r = latest.at(id);
  EXPECT_EQ(r.state, streamtally::SessionState::Closed);
  EXPECT_EQ(r.type, streamtally::SessionType::Play);
  EXPECT_EQ(r.protocol, streamtally::Protocol::HttpFlv);
  EXPECT_EQ(r.stream, "live/cam1");
  EXPECT_EQ(r.client_ip, "192.0.2.7");
  EXPECT_EQ(r.user_agent, "VLC/3.0.18");
  EXPECT_EQ(r.referer, "https://example.com/page");
  EXPECT_EQ(r.user_id, "alice");
  EXPECT_EQ(r.token, "tok-1");
  EXPECT_EQ(r.bytes_out, expected);
  EXPECT_EQ(r.bytes_in, 0u);
  EXPECT_EQ(r.end_reason, streamtally::EndReason::Server);
  EXPECT_TRUE(r.ended_at.has_value());
}

// Lists pass whole (counted with one add once the session is open); the first list,
// which opens the session, is counted buffer by buffer. Every byte counts either way.
TEST_F(StreamtallyHarness, BufferListsPassThroughWholeAndCountEveryByte) {
  start();
  guint64 expected = 0;
  for (int round = 0; round < 3; ++round) {
    GstBufferList* list = gst_buffer_list_new();
    std::vector<GstBuffer*> sent;
    for (gsize size : {188u, 1316u, 7u, 65536u}) {
      GstBuffer* b = gst_buffer_new_and_alloc(size + round);
      sent.push_back(b);
      gst_buffer_list_add(list, b);
      expected += size + round;
    }
    ASSERT_EQ(gst_pad_push_list(harness_->srcpad, list), GST_FLOW_OK);
    for (GstBuffer* b : sent) {
      GstBuffer* out = gst_harness_pull(harness_);
      ASSERT_NE(out, nullptr);
      EXPECT_EQ(out, b) << "pass-through must hand on the buffers it got";
      gst_buffer_unref(out);
    }
    EXPECT_EQ(bytes_property(), expected) << "after list " << round;
  }
  const std::string id = session_id_property();
  gst_harness_teardown(harness_);
  harness_ = nullptr;
  auto latest = latest_by_session(spool_records(spool_));
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest.at(id).bytes_out, expected);
}

TEST_F(StreamtallyHarness, PublishCountsBytesInAndEosClosesWithMessage) {
  gst_util_set_object_arg(G_OBJECT(element_), "type", "publish");
  gst_util_set_object_arg(G_OBJECT(element_), "protocol", "srt");
  g_object_set(element_, "stream", "ingest/a", nullptr);
  start();
  push_and_check_same(1000);
  push_and_check_same(2345);
  ASSERT_TRUE(gst_harness_push_event(harness_, gst_event_new_eos()));

  GstMessage* msg = pop_session_message(bus_, 5s);
  ASSERT_NE(msg, nullptr) << "EOS must close the session and post streamtally-session";
  const GstStructure* s = gst_message_get_structure(msg);
  EXPECT_EQ(GST_MESSAGE_SRC(msg), GST_OBJECT(element_));
  guint64 in = 0, out = 0;
  ASSERT_TRUE(gst_structure_get_uint64(s, "bytes-in", &in));
  ASSERT_TRUE(gst_structure_get_uint64(s, "bytes-out", &out));
  EXPECT_EQ(in, 3345u);
  EXPECT_EQ(out, 0u);
  EXPECT_STREQ(gst_structure_get_string(s, "end-reason"), "client") << "a publisher's EOS: it ended";
  EXPECT_STREQ(gst_structure_get_string(s, "type"), "publish");
  EXPECT_STREQ(gst_structure_get_string(s, "protocol"), "srt");
  EXPECT_STREQ(gst_structure_get_string(s, "stream"), "ingest/a");
  const std::string id = gst_structure_get_string(s, "session-id");
  EXPECT_EQ(id, session_id_property());
  gint64 started = 0, ended = 0;
  ASSERT_TRUE(gst_structure_get_int64(s, "started-at", &started));
  ASSERT_TRUE(gst_structure_get_int64(s, "ended-at", &ended));
  EXPECT_LE(started, ended);
  gst_message_unref(msg);

  // Closed on EOS, before the element stops: the spool gets the final record.
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    auto it = latest.find(id);
    return it != latest.end() && it->second.state == streamtally::SessionState::Closed;
  }, 10s));
  auto latest = latest_by_session(spool_records(spool_));
  EXPECT_EQ(latest.at(id).bytes_in, 3345u);
  EXPECT_EQ(latest.at(id).end_reason, streamtally::EndReason::Client);

  // Stopping after EOS must not close it a second time.
  gst_harness_teardown(harness_);
  harness_ = nullptr;
  EXPECT_EQ(pop_session_message(bus_, 200ms), nullptr);
  EXPECT_EQ(latest_by_session(spool_records(spool_)).size(), 1u);
}

TEST_F(StreamtallyHarness, InterimUpdatesCarryTheBytesSoFar) {
  g_object_set(element_, "interim", 200u, nullptr);
  start();
  push_and_check_same(5000);
  const std::string id = session_id_property();
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    auto it = latest.find(id);
    return it != latest.end() && it->second.seq >= 1 && it->second.bytes_out == 5000;
  }, 10s)) << "an interim update with the bytes counted so far";
  push_and_check_same(7000);
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    auto it = latest.find(id);
    return it != latest.end() && it->second.bytes_out == 12000 &&
           it->second.state == streamtally::SessionState::Open;
  }, 10s)) << "a later interim update with the new total, session still open";
}

TEST_F(StreamtallyHarness, EveryStateCycleIsANewSession) {
  start();
  std::vector<std::string> ids;
  for (int cycle = 0; cycle < 3; ++cycle) {
    if (cycle > 0) {
      ASSERT_EQ(gst_element_set_state(element_, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
      restart_stream(("cycle-" + std::to_string(cycle)).c_str());
    }
    for (int i = 0; i <= cycle; ++i) push_and_check_same(100);
    ids.push_back(session_id_property());
    EXPECT_EQ(bytes_property(), 100u * (cycle + 1));
    // Back and forth through PAUSED and READY; the session closes on leaving PAUSED.
    ASSERT_EQ(gst_element_set_state(element_, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
    ASSERT_EQ(gst_element_set_state(element_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    GstMessage* msg = pop_session_message(bus_, 5s);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(gst_structure_get_string(gst_message_get_structure(msg), "session-id"), ids.back());
    gst_message_unref(msg);
    EXPECT_EQ(bytes_property(), 100u * (cycle + 1)) << "the last session's bytes stay readable in READY";
  }
  ASSERT_EQ(gst_element_set_state(element_, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u);

  auto latest = latest_by_session(spool_records(spool_));
  ASSERT_EQ(latest.size(), 3u);
  for (int cycle = 0; cycle < 3; ++cycle) {
    const SessionRecord& r = latest.at(ids[cycle]);
    EXPECT_EQ(r.state, streamtally::SessionState::Closed);
    EXPECT_EQ(r.bytes_out, 100u * (cycle + 1));
    EXPECT_EQ(r.end_reason, streamtally::EndReason::Server);
  }
}

TEST_F(StreamtallyHarness, NoSessionWithoutData) {
  start();
  gst_harness_teardown(harness_);
  harness_ = nullptr;
  EXPECT_EQ(pop_session_message(bus_, 200ms), nullptr);
  EXPECT_TRUE(spool_records(spool_).empty());
}

TEST(StreamtallyElement, WithoutSpoolItRefusesToStart) {
  streamtally::gsttest::register_plugin();
  GstElement* pipeline = gst_parse_launch("fakesrc num-buffers=1 ! streamtally ! fakesink", nullptr);
  ASSERT_NE(pipeline, nullptr);
  EXPECT_EQ(gst_element_set_state(pipeline, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* error = pop_message(bus, GST_MESSAGE_ERROR, 2s);
  ASSERT_NE(error, nullptr);
  GError* e = nullptr;
  gst_message_parse_error(error, &e, nullptr);
  EXPECT_NE(std::string(e->message).find("spool"), std::string::npos) << e->message;
  g_error_free(e);
  gst_message_unref(error);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

TEST(StreamtallyElement, AnUnusableSpoolWarnsAndStillPassesData) {
  streamtally::gsttest::register_plugin();
  streamtally::test::TempDir dir;
  // A directory where the spool file should be: SQLite cannot open it.
  const std::string spool = dir.file("spool-is-a-directory");
  std::filesystem::create_directory(spool);
  GstElement* pipeline = gst_parse_launch(
      ("fakesrc num-buffers=50 sizetype=fixed sizemax=100 ! streamtally spool=" + spool +
       " ! fakesink name=sink signal-handoffs=true").c_str(),
      nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  int handoffs = 0;
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer*, GstPad*, gpointer n) {
                     ++*static_cast<int*>(n);
                   }), &handoffs);
  gst_object_unref(sink);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  bool warned = false;
  bool eos = false;
  while (!eos) {
    GstMessage* msg = pop_message(bus, static_cast<GstMessageType>(GST_MESSAGE_WARNING | GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 10s);
    ASSERT_NE(msg, nullptr) << "bounded: EOS expected";
    ASSERT_NE(GST_MESSAGE_TYPE(msg), GST_MESSAGE_ERROR);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) warned = true;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) eos = true;
    gst_message_unref(msg);
  }
  EXPECT_TRUE(warned);
  EXPECT_EQ(handoffs, 50) << "accounting trouble never stops the media";
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

}  // namespace

namespace {

TEST(StreamtallyElement, ADownstreamErrorEndsTheSessionWithError) {
  streamtally::gsttest::register_plugin();
  streamtally::test::TempDir dir;
  const std::string spool = dir.file("spool.db");
  // identity error-after=10 fails the 10th buffer: 10 buffers passed our element.
  GstElement* pipeline = gst_parse_launch(
      ("fakesrc num-buffers=100 sizetype=fixed sizemax=500 ! streamtally spool=" + spool +
       " ! identity error-after=10 ! fakesink").c_str(),
      nullptr);
  ASSERT_NE(pipeline, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* error = pop_message(bus, GST_MESSAGE_ERROR, 10s);
  ASSERT_NE(error, nullptr);
  gst_message_unref(error);
  // READY first: a pipeline flushes its bus when it reaches NULL.
  ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  GstMessage* msg = pop_session_message(bus, 5s);
  ASSERT_NE(msg, nullptr);
  EXPECT_STREQ(gst_structure_get_string(gst_message_get_structure(msg), "end-reason"), "error");
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);

  auto latest = latest_by_session(spool_records(spool));
  ASSERT_EQ(latest.size(), 1u);
  const SessionRecord& r = latest.begin()->second;
  EXPECT_EQ(r.end_reason, streamtally::EndReason::Error);
  EXPECT_EQ(r.bytes_out, 10u * 500u);
}

}  // namespace
