// The collector's listening socket: one collector per address, and a listen queue deep
// enough for a fleet of edges that reconnect at the same moment (Debian's cpp-httplib
// listens with a backlog of 5 and SO_REUSEPORT; see CollectorServer's constructor).
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "collector_process.hpp"

namespace streamtally::test {
namespace {

int port_of(const CollectorProcess& collector) {
  const std::string base = collector.url("");  // http://127.0.0.1:PORT
  return std::stoi(base.substr(base.rfind(':') + 1));
}

TEST(CollectorListen, ASecondCollectorOnTheSameAddressIsRefused) {
  TempDir dir;
  CollectorProcess first(dir.file("first.db"));
  ASSERT_TRUE(first.started()) << read_file(first.log_path());
  const std::string address = "127.0.0.1:" + std::to_string(port_of(first));
  const CommandResult second = run_command(
      {collector_binary(), "--listen", address, "--store", "sqlite:" + dir.file("second.db"), "--ingest-token",
       kIngestToken},
      std::chrono::seconds(60));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("cannot listen on " + address), std::string::npos) << second.err;
  // The first one still answers, alone.
  EXPECT_EQ(first.get("/healthz").status, 200);
}

// The kernel reports a listening socket's backlog as its send queue.
TEST(CollectorListen, TheListenQueueTakesAFleetReconnecting) {
  TempDir dir;
  CollectorProcess collector(dir.file("c.db"));
  ASSERT_TRUE(collector.started()) << read_file(collector.log_path());
  const int port = port_of(collector);
  const CommandResult ss =
      run_command({"ss", "-Hltn", "sport = :" + std::to_string(port)}, std::chrono::seconds(10));
  ASSERT_EQ(ss.exit_code, 0) << ss.err;
  // "LISTEN 0 4096 127.0.0.1:PORT 0.0.0.0:*": state, queued, backlog.
  std::istringstream fields(ss.out);
  std::string state;
  long queued = -1, backlog = -1;
  fields >> state >> queued >> backlog;
  EXPECT_EQ(state, "LISTEN") << ss.out;
  EXPECT_GE(backlog, 128) << ss.out;

  // And a burst of connections at once (more than the collector has threads) all get
  // their answer.
  constexpr int kConnections = 64;
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kConnections; ++i)
    clients.emplace_back([&] {
      if (http_request("GET", collector.url("/healthz"), "", {}, std::chrono::seconds(60)).status == 200)
        ++answered;
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), kConnections);
}

}  // namespace
}  // namespace streamtally::test
