// An RTMP publisher that sends more than 4 GiB through Debian's nginx-rtmp (whose
// own 32-bit counters wrap/reset on the way). Ground truth: a byte-counting TCP
// relay between ffmpeg and nginx, so exactly what crossed nginx's socket is known.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "nginx_fixture.hpp"

using namespace streamtally;
using namespace streamtally::nginx_test;

namespace {

// Accepts one connection on 127.0.0.1:<port> and relays it to 127.0.0.1:<target>,
// counting the bytes of each direction.
class CountingRelay {
 public:
  explicit CountingRelay(int target) : target_(target) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listen_fd_, 1);
    thread_ = std::thread([this] { run(); });
  }
  ~CountingRelay() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  uint64_t to_server() const { return to_server_; }
  uint64_t to_client() const { return to_client_; }
  bool done() const { return done_; }

 private:
  static void pump(int from, int to, std::atomic<uint64_t>& counter) {
    std::vector<char> buf(1 << 20);
    for (;;) {
      const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::send(to, buf.data() + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
      counter += static_cast<uint64_t>(n);
    }
    ::shutdown(to, SHUT_WR);
  }
  void run() {
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_));
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      std::thread back([&] { pump(server, client, to_client_); });
      pump(client, server, to_server_);
      back.join();
    }
    ::close(server);
    ::close(client);
    done_ = true;
  }

  int target_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> to_server_{0}, to_client_{0};
  std::atomic<bool> done_{false};
};

}  // namespace

TEST(NginxRtmpBigStream, PublisherPastFourGiBIsCountedExactly) {
  NginxOptions o;
  o.workers = 1;
  o.http = false;
  o.interim = "5s";
  Nginx nginx(o);
  nginx.start();

  // ~100 MB of FLV (noisy video, cheap flv1 encoding), sent 45 times as fast as
  // nginx takes it: ~4.5 GB, beyond 2^32.
  const std::string flv = nginx.dir().string() + "/big.flv";
  auto enc = test::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                                "testsrc=size=1280x720:rate=25,noise=alls=100:allf=t", "-t", "4", "-c:v", "flv1",
                                "-q:v", "2", "-g", "250", "-f", "flv", flv},
                               60s);
  ASSERT_EQ(enc.exit_code, 0) << enc.err;

  CountingRelay relay(nginx.rtmp_port());
  auto publish = test::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "44", "-i", flv, "-c",
                                    "copy", "-f", "flv",
                                    "rtmp://127.0.0.1:" + std::to_string(relay.port()) + "/app/big?token=bulk"},
                                   150s);
  ASSERT_EQ(publish.exit_code, 0) << publish.err;
  ASSERT_TRUE(test::wait_until([&] { return relay.done(); }, 20s));
  ASSERT_GT(relay.to_server(), 1ull << 32) << "the workload must pass 4 GiB";

  auto closed = wait_for_closed(nginx.spool_path(), 1, 20s);
  ASSERT_EQ(closed.size(), 1u) << describe(spool_sessions(nginx.spool_path()));
  const auto& rec = closed[0];
  EXPECT_EQ(rec.type, SessionType::Publish);
  EXPECT_EQ(rec.token, "bulk");
  // Everything nginx received on the socket, handshake included.
  EXPECT_EQ(rec.bytes_in, relay.to_server());
  // Sent: all of it but the last status messages after the stream's close.
  EXPECT_LE(rec.bytes_out, relay.to_client());
  EXPECT_GE(rec.bytes_out + 1024, relay.to_client());

  // nginx-rtmp's own counter could not say it: 32 bits, reset near 3.75 GB.
  auto log = nginx.rtmp_access_log();
  ASSERT_EQ(log.size(), 1u);
  std::printf("received by nginx (relay): %llu, ours: %llu, nginx-rtmp's log: %llu\n",
              static_cast<unsigned long long>(relay.to_server()), static_cast<unsigned long long>(rec.bytes_in),
              static_cast<unsigned long long>(log[0].bytes_received));
  EXPECT_LT(log[0].bytes_received, relay.to_server());
  EXPECT_TRUE(nginx.quit().has_value());
}
