// SIGTERM while a batch is on the wire: the collector finishes reading it, commits,
// answers 200, then exits 0 — and the records are there after a restart.
#include <gtest/gtest.h>
#include <httplib.h>

#include <csignal>
#include <thread>

#include "collector_process.hpp"
#include "streamtally/gzip.hpp"

namespace streamtally::test {
namespace {

using nlohmann::json;

TEST(CollectorShutdown, SigtermFinishesTheRequestInFlight) {
  TempDir dir;
  std::string body;
  for (int i = 0; i < 2000; ++i)
    body += json{{"server_id", "srv"}, {"host", "h"}, {"session_id", "s" + std::to_string(i)}, {"seq", 0},
                 {"state", "open"}, {"type", "play"}, {"protocol", "hls"}, {"stream", "live/a"},
                 {"client_ip", "8.8.8.8"}, {"user_agent", "VLC/3.0.18 LibVLC/3.0.18"}, {"referer", ""},
                 {"user_id", nullptr}, {"token", nullptr}, {"started_at", 1790000000000LL + i},
                 {"updated_at", 1790000060000LL + i}, {"ended_at", nullptr}, {"bytes_in", 1},
                 {"bytes_out", 1000 + i}, {"end_reason", nullptr}}
                .dump() +
            "\n";
  const std::string gz = gzip_compress(body);
  const std::string url_prefix = "http://127.0.0.1:";
  int exit_code = -1;
  {
    CollectorProcess collector(dir.file("c.db"));
    ASSERT_TRUE(collector.started()) << read_file(collector.log_path());
    const std::string base = collector.url("");
    const int port = std::stoi(base.substr(url_prefix.size()));
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);
    client.set_keep_alive(true);
    // A first request on the same connection: the collector has accepted it and a worker
    // serves it, so the batch below is in flight (a connection still waiting in the
    // kernel's backlog at SIGTERM is refused instead; uploaders retry those).
    auto health = client.Get("/healthz");
    ASSERT_TRUE(health && health->status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the worker is back waiting on this connection
    bool signalled = false;
    // The body goes out in two halves; SIGTERM is sent between them.
    auto res = client.Post(
        "/v1/batches",
        {{"Authorization", std::string("Bearer ") + kIngestToken},
         {"Content-Encoding", "gzip"},
         {"Idempotency-Key", "in-flight"}},
        gz.size(),
        [&](size_t offset, size_t, httplib::DataSink& sink) {
          const size_t half = gz.size() / 2;
          if (offset < half) {
            sink.write(gz.data(), half);
          } else {
            if (!signalled) {
              kill(collector.pid(), SIGTERM);
              signalled = true;
              // Let the signal land before the rest of the body arrives.
              std::this_thread::sleep_for(std::chrono::milliseconds(300));
            }
            sink.write(gz.data() + half, gz.size() - half);
          }
          return true;
        },
        "application/x-ndjson");
    ASSERT_TRUE(res) << httplib::to_string(res.error()) << "\n" << read_file(collector.log_path());
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body).at("accepted"), 2000);
    exit_code = collector.stop();
  }
  EXPECT_EQ(exit_code, 0);
  CollectorProcess again(dir.file("c.db"));
  ASSERT_TRUE(again.started());
  EXPECT_EQ(again.get_json("/healthz").at("sessions"), 2000);
}

}  // namespace
}  // namespace streamtally::test
