#include "gst_test_util.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "elements.h"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"

namespace streamtally::gsttest {

void register_plugin() {
  static bool done = [] {
    gst_init(nullptr, nullptr);
    return gst_plugin_register_static(GST_VERSION_MAJOR, GST_VERSION_MINOR, "streamtally",
                                      "StreamTally (registered statically for tests)",
                                      streamtally_gst_register_elements, "0.1.0", "unknown",
                                      "streamtally", "StreamTally", "https://example.invalid");
  }();
  ASSERT_TRUE(done);
}

std::vector<SessionRecord> spool_records(const std::string& spool_path) {
  std::vector<SessionRecord> out;
  auto spool = Spool::open(SpoolOptions{spool_path});
  EXPECT_TRUE(spool.ok()) << spool.error();
  if (!spool.ok()) return out;
  auto lines = (*spool)->pending_lines();
  EXPECT_TRUE(lines.ok()) << lines.error();
  if (!lines.ok()) return out;
  for (const std::string& line : lines.value()) {
    auto record = decode_record(line);
    EXPECT_TRUE(record.ok()) << record.error() << ": " << line;
    if (record.ok()) out.push_back(std::move(record.value()));
  }
  return out;
}

std::map<std::string, SessionRecord> latest_by_session(const std::vector<SessionRecord>& records) {
  std::map<std::string, SessionRecord> latest;
  for (const SessionRecord& r : records) {
    auto it = latest.find(r.session_id);
    if (it == latest.end() || it->second.seq < r.seq) latest[r.session_id] = r;
  }
  return latest;
}

bool wait_for_records(const std::string& spool_path,
                      const std::function<bool(const std::map<std::string, SessionRecord>&)>& predicate,
                      std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate(latest_by_session(spool_records(spool_path)))) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

GstMessage* pop_message(GstBus* bus, GstMessageType types, std::chrono::milliseconds timeout) {
  return gst_bus_timed_pop_filtered(bus, static_cast<GstClockTime>(timeout.count()) * GST_MSECOND, types);
}

GstMessage* pop_session_message(GstBus* bus, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return nullptr;
    GstMessage* msg = pop_message(bus, GST_MESSAGE_ELEMENT, left);
    if (!msg) return nullptr;
    if (gst_message_has_name(msg, "streamtally-session")) return msg;
    gst_message_unref(msg);
  }
}

}  // namespace streamtally::gsttest
