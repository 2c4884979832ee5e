// The installed form: libgststreamtally.so loaded by GStreamer's own tools through
// GST_PLUGIN_PATH. gst-inspect-1.0 must describe the elements; two gst-launch-1.0
// processes writing one spool at once must both land there with exact byte counts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gst_test_util.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using streamtally::test::ChildProcess;
using streamtally::test::TempDir;

namespace {

std::map<std::string, std::string> plugin_env(const TempDir& dir) {
  return {{"GST_PLUGIN_PATH", streamtally::test::build_dir() + "/gst-plugins"},
          // A private registry: the scan sees this build's plugin, not a stale cache.
          {"GST_REGISTRY", dir.file("registry.bin")}};
}

TEST(GstPluginFile, GstInspectExplainsEveryProperty) {
  TempDir dir;
  ChildProcess::Options o;
  o.argv = {"gst-inspect-1.0", "streamtally"};
  o.env = plugin_env(dir);
  o.stdout_path = dir.file("inspect.out");
  o.stderr_path = dir.file("inspect.err");
  ChildProcess inspect(o);
  ASSERT_EQ(inspect.wait(60s), 0) << streamtally::test::read_file(o.stderr_path);
  const std::string out = streamtally::test::read_file(o.stdout_path);
  EXPECT_NE(out.find("libgststreamtally.so"), std::string::npos);
  for (const char* property : {"type", "protocol", "stream", "client-ip", "user-agent", "referer", "user-id",
                               "token", "spool", "collector", "collector-token", "server-id", "interim",
                               "session-id", "bytes"}) {
    EXPECT_NE(out.find(std::string("\n  ") + property + " "), std::string::npos) << property;
  }
  o.argv = {"gst-inspect-1.0", "streamtallyhttpsink"};
  o.stdout_path = dir.file("inspect-http.out");
  ChildProcess inspect_http(o);
  ASSERT_EQ(inspect_http.wait(60s), 0);
  const std::string http = streamtally::test::read_file(o.stdout_path);
  for (const char* property : {"address", "port", "stream", "max-clients", "spool", "collector", "interim"}) {
    EXPECT_NE(http.find(std::string("\n  ") + property + " "), std::string::npos) << property;
  }
}

TEST(GstPluginFile, TwoProcessesShareOneSpool) {
  TempDir dir;
  const std::string spool = dir.file("spool.db");
  std::vector<std::unique_ptr<ChildProcess>> launches;
  // 200000 and 300000 buffers of 1316 bytes, long enough for the two runs to overlap.
  for (int buffers : {200000, 300000}) {
    ChildProcess::Options o;
    o.argv = {"gst-launch-1.0", "-q", "fakesrc", "num-buffers=" + std::to_string(buffers), "sizetype=fixed",
              "sizemax=1316", "!", "streamtally", "spool=" + spool, "stream=proc/" + std::to_string(buffers),
              "!", "fakesink"};
    o.env = plugin_env(dir);
    o.stderr_path = dir.file("launch" + std::to_string(buffers) + ".err");
    launches.push_back(std::make_unique<ChildProcess>(o));
  }
  for (auto& launch : launches) ASSERT_EQ(launch->wait(60s), 0);
  auto latest = streamtally::gsttest::latest_by_session(streamtally::gsttest::spool_records(spool));
  ASSERT_EQ(latest.size(), 2u);
  for (const auto& [id, r] : latest) {
    EXPECT_EQ(r.state, streamtally::SessionState::Closed);
    const uint64_t buffers = r.stream == "proc/200000" ? 200000 : 300000;
    EXPECT_EQ(r.bytes_out, buffers * 1316) << r.stream;
    EXPECT_EQ(r.end_reason, streamtally::EndReason::Server) << "EOS of a play session";
  }
}

}  // namespace
