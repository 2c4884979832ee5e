// streamtally-rtsp-server (the example program on streamtally_rtsp_server_attach)
// with real RTSP clients: GStreamer's rtspsrc over UDP and ffmpeg over TCP and UDP.
// Ground truth is measured outside the server: for UDP the RTP bytes the client's
// own udpsrc received (a probe on it), for TCP the interleaved RTP frames ('$', ch 0)
// a relay between ffmpeg and the server saw on the wire.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <sstream>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gst_test_util.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using streamtally::SessionRecord;
using streamtally::gsttest::latest_by_session;
using streamtally::gsttest::spool_records;
using streamtally::gsttest::wait_for_records;
using streamtally::test::ChildProcess;
using streamtally::test::TempDir;

namespace {

const char* kMedia =
    "( videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=25/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph264pay name=pay0 pt=96 )";

// Splits what an RTSP server sends over one TCP connection into interleaved frames
// ('$', channel, 16-bit length, packet) — counting the bytes of channel 0 (RTP) —
// and RTSP responses (head + Content-Length body), which it keeps.
class RtspStreamParser {
 public:
  void feed(const char* bytes, std::size_t n) {
    data_.append(bytes, n);
    while (!data_.empty()) {
      if (data_[0] == '$') {
        if (data_.size() < 4) return;
        std::size_t len = (static_cast<unsigned char>(data_[2]) << 8) | static_cast<unsigned char>(data_[3]);
        if (data_.size() < 4 + len) return;
        if (data_[1] == 0) rtp_frame_bytes_ += 4 + len;
        data_.erase(0, 4 + len);
      } else {
        std::size_t end = data_.find("\r\n\r\n");
        if (end == std::string::npos) return;
        if (data_.compare(0, 5, "RTSP/") != 0) {
          error_ = true;
          data_.clear();
          return;
        }
        std::size_t body = 0;
        std::size_t cl = data_.find("Content-Length:");
        if (cl != std::string::npos && cl < end) body = std::stoul(data_.substr(cl + 15));
        if (data_.size() < end + 4 + body) return;
        responses_.push_back(data_.substr(0, end + 4 + body));
        data_.erase(0, end + 4 + body);
      }
    }
  }
  uint64_t rtp_frame_bytes() const { return rtp_frame_bytes_.load(); }
  bool error() const { return error_; }
  std::vector<std::string>& responses() { return responses_; }

 private:
  std::string data_;
  std::atomic<uint64_t> rtp_frame_bytes_{0};
  bool error_ = false;
  std::vector<std::string> responses_;
};

// A TCP relay client <-> server that counts, in the server-to-client direction, the
// bytes of interleaved RTP frames ('$', channel 0, 16-bit length, packet) —
// parsing RTSP responses (head + Content-Length body) in between. Every accepted
// connection gets its own pump thread (a client may reconnect, e.g. around PAUSE).
class InterleavedCountingRelay {
 public:
  explicit InterleavedCountingRelay(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_fd_, 4);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~InterleavedCountingRelay() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : pumps_) t.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  uint64_t rtp_frame_bytes() const { return rtp_frame_bytes_.load(); }
  bool parse_error() const { return parse_error_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client >= 0) pumps_.emplace_back([this, client] { pump(client); });
    }
  }
  void pump(int client) {
    int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(client);
      ::close(server);
      return;
    }
    RtspStreamParser parser;
    uint64_t counted = 0;
    while (!stop_) {
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      char buf[65536];
      if (p[0].revents) {
        ssize_t n = ::recv(client, buf, sizeof buf, 0);
        if (n <= 0) break;
        (void)!::send(server, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
      }
      if (p[1].revents) {
        ssize_t n = ::recv(server, buf, sizeof buf, 0);
        if (n <= 0) break;
        (void)!::send(client, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
        parser.feed(buf, static_cast<std::size_t>(n));
        rtp_frame_bytes_ += parser.rtp_frame_bytes() - counted;
        counted = parser.rtp_frame_bytes();
        if (parser.error()) parse_error_ = true;
      }
    }
    ::close(client);
    ::close(server);
  }
  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> rtp_frame_bytes_{0};
  std::atomic<bool> parse_error_{false};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;  // acceptor thread only, joined after it
};

class RtspServer : public ::testing::Test {
 protected:
  void SetUp() override {
    streamtally::gsttest::register_plugin();
    port_ = streamtally::test::free_port();
    ChildProcess::Options o;
    // STREAMTALLY_TEST_WRAPPER (e.g. a valgrind command line) runs the server under it.
    if (const char* wrapper = std::getenv("STREAMTALLY_TEST_WRAPPER"); wrapper && *wrapper) {
      std::istringstream words(wrapper);
      for (std::string w; words >> w;) o.argv.push_back(w);
      wrapped_ = true;
    }
    for (const std::string& arg : {streamtally::test::build_dir() + "/gst-plugin/streamtally-rtsp-server",
                                   std::string("--port"), std::to_string(port_), std::string("--mount"),
                                   std::string("/live/cam"), std::string("--spool"), spool_,
                                   std::string("--interim"), std::string("500"), std::string(kMedia)}) {
      o.argv.push_back(arg);
    }
    o.stdout_path = dir_.file("server.out");
    o.stderr_path = dir_.file("server.err");
    server_ = std::make_unique<ChildProcess>(o);
    ASSERT_TRUE(streamtally::test::wait_for_port(port_, wrapped_ ? 90s : 10s))
        << streamtally::test::read_file(o.stderr_path);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::printf("--- server stderr ---\n%s\n", streamtally::test::read_file(dir_.file("server.err")).c_str());
    }
    // Under a wrapper like valgrind --error-exitcode=42, a clean exit means no leak.
    if (server_ && server_->running()) {
      const int code = server_->stop(wrapped_ ? 60s : 5s);
      if (wrapped_) {
        EXPECT_EQ(code, 0) << streamtally::test::read_file(dir_.file("server.err"));
      }
    }
  }
  std::string url(int port) const { return "rtsp://127.0.0.1:" + std::to_string(port) + "/live/cam"; }
  const SessionRecord* closed_with_agent(const std::map<std::string, SessionRecord>& latest, const std::string& ua) {
    for (const auto& [id, r] : latest) {
      if (r.user_agent == ua && r.state == streamtally::SessionState::Closed) return &r;
    }
    return nullptr;
  }

  TempDir dir_;
  std::string spool_ = dir_.file("spool.db");
  int port_ = 0;
  bool wrapped_ = false;
  std::unique_ptr<ChildProcess> server_;
};

// Counts the RTP bytes the udpsrc elements inside rtspsrc receive (RTP: version 2 and
// our payload type 96; RTCP packets carry types 200-204 there).
struct UdpReceiveCounter {
  std::atomic<uint64_t> rtp_bytes{0};
};

TEST_F(RtspServer, UdpClientSessionCountsWhatTheClientReceived) {
  const std::string ua = "GstRtspsrc-UDP-Test/1.0";
  GstElement* client = gst_parse_launch(
      ("rtspsrc location=" + url(port_) + " protocols=udp latency=0 teardown-timeout=3000000000 user-agent=" + ua +
       " ! rtph264depay ! fakesink sync=false").c_str(),
      nullptr);
  ASSERT_NE(client, nullptr);
  UdpReceiveCounter counter;
  g_signal_connect(client, "deep-element-added", G_CALLBACK(+[](GstBin*, GstBin*, GstElement* e, gpointer data) {
    GstElementFactory* f = gst_element_get_factory(e);
    if (!f || g_strcmp0(GST_OBJECT_NAME(f), "udpsrc") != 0) return;
    GstPad* pad = gst_element_get_static_pad(e, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, +[](GstPad* pad, GstPadProbeInfo* info, gpointer data) {
      GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
      guint8 head[2] = {0, 0};
      if (gst_buffer_extract(buffer, 0, head, 2) == 2 && (head[0] >> 6) == 2 && (head[1] & 0x7f) == 96) {
        static_cast<UdpReceiveCounter*>(data)->rtp_bytes += gst_buffer_get_size(buffer);
      }
      (void)pad;
      return GST_PAD_PROBE_OK;
    }, data, nullptr);
    gst_object_unref(pad);
  }), &counter);
  ASSERT_NE(gst_element_set_state(client, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  // Plays until an interim update shows bytes flowing, then ~1 s more.
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    for (const auto& [id, r] : latest) if (r.user_agent == ua && r.bytes_out > 20000) return true;
    return false;
  }, 15s));
  std::this_thread::sleep_for(1s);
  // Sends TEARDOWN (waiting up to teardown-timeout, 3 s, for it to go out).
  ASSERT_EQ(gst_element_set_state(client, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);

  const uint64_t rtp_received = counter.rtp_bytes.load();
  gst_object_unref(client);

  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) { return closed_with_agent(latest, ua); }, 10s));
  auto latest = latest_by_session(spool_records(spool_));
  const SessionRecord& r = *closed_with_agent(latest, ua);
  EXPECT_EQ(r.protocol, streamtally::Protocol::Rtsp);
  EXPECT_EQ(r.stream, "live/cam");
  EXPECT_EQ(r.client_ip, "127.0.0.1");
  EXPECT_EQ(r.end_reason, streamtally::EndReason::Client) << "TEARDOWN";
  EXPECT_EQ(r.tags.count("rtsp_session"), 1u);
  ASSERT_GT(rtp_received, 20000u);
  // With a TEARDOWN the server reads multiudpsink's exact count (>= what the client
  // read: it may stop reading a few packets early); when the connection closes first,
  // the stream counter gives the count, off by the packets queued at either end.
  const uint64_t diff = r.bytes_out > rtp_received ? r.bytes_out - rtp_received : rtp_received - r.bytes_out;
  EXPECT_LE(diff, rtp_received / 20) << "sent " << r.bytes_out << " received " << rtp_received;
  std::printf("RTSP/UDP: server bytes_out %llu, client received %llu RTP bytes\n",
              static_cast<unsigned long long>(r.bytes_out), static_cast<unsigned long long>(rtp_received));
}

TEST_F(RtspServer, FfmpegOverTcpAndUdpShareTheMedia) {
  InterleavedCountingRelay relay(port_);
  const std::string tcp_ua = "FFmpeg-TCP-Test/5.1";
  const std::string udp_ua = "FFmpeg-UDP-Test/5.1";
  auto ffmpeg = [&](const std::string& transport, const std::string& ua, int port) {
    ChildProcess::Options o;
    o.argv = {"ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport, "-user_agent", ua,
              "-i", url(port), "-t", "2", "-c", "copy", "-f", "null", "-"};
    o.stderr_path = dir_.file("ffmpeg-" + transport + ".err");
    return std::make_unique<ChildProcess>(o);
  };
  auto tcp_client = ffmpeg("tcp", tcp_ua, relay.port());
  auto udp_client = ffmpeg("udp", udp_ua, port_);
  auto tcp_exit = tcp_client->wait(30s);
  auto udp_exit = udp_client->wait(30s);
  ASSERT_TRUE(tcp_exit.has_value());
  ASSERT_TRUE(udp_exit.has_value());
  EXPECT_EQ(*tcp_exit, 0) << streamtally::test::read_file(dir_.file("ffmpeg-tcp.err"));
  EXPECT_EQ(*udp_exit, 0) << streamtally::test::read_file(dir_.file("ffmpeg-udp.err"));

  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    return closed_with_agent(latest, tcp_ua) && closed_with_agent(latest, udp_ua);
  }, 10s));
  auto latest = latest_by_session(spool_records(spool_));
  const SessionRecord& tcp = *closed_with_agent(latest, tcp_ua);
  const SessionRecord& udp = *closed_with_agent(latest, udp_ua);
  for (const SessionRecord* r : {&tcp, &udp}) {
    EXPECT_EQ(r->protocol, streamtally::Protocol::Rtsp);
    EXPECT_EQ(r->stream, "live/cam");
    EXPECT_EQ(r->client_ip, "127.0.0.1");
    EXPECT_EQ(r->end_reason, streamtally::EndReason::Client);
    EXPECT_GT(r->bytes_out, 20000u) << "two seconds of video";
  }
  EXPECT_NE(tcp.tags.at("rtsp_session"), udp.tags.at("rtsp_session"));
  ASSERT_FALSE(relay.parse_error());
  const uint64_t wire = relay.rtp_frame_bytes();
  ASSERT_GT(wire, 20000u);
  // TCP is counted at the stream's source pad between PLAY and TEARDOWN: packets
  // queued between that pad and the socket at either end shift the count by a few.
  const uint64_t diff = tcp.bytes_out > wire ? tcp.bytes_out - wire : wire - tcp.bytes_out;
  EXPECT_LE(diff, wire / 20) << "counted " << tcp.bytes_out << ", on the wire " << wire;
  std::printf("RTSP/TCP: server bytes_out %llu, interleaved RTP frames on the wire %llu\n",
              static_cast<unsigned long long>(tcp.bytes_out), static_cast<unsigned long long>(wire));
}

// A minimal RTSP client over TCP-interleaved that does exactly what a test asks:
// DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, and counts the RTP frames it receives.
class RawRtspClient {
 public:
  RawRtspClient(int port, std::string url, std::string user_agent)
      : url_(std::move(url)), user_agent_(std::move(user_agent)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawRtspClient() { ::close(fd_); }
  bool connected() const { return connected_; }

  // Sends a request, reads (and counts frames) until its response; "" on timeout.
  std::string request(const std::string& method, const std::string& url, const std::string& headers) {
    const std::string text = method + " " + url + " RTSP/1.0\r\nCSeq: " + std::to_string(++cseq_) +
                             "\r\nUser-Agent: " + user_agent_ + "\r\n" +
                             (session_.empty() ? "" : "Session: " + session_ + "\r\n") + headers + "\r\n";
    (void)!::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!parser_.responses().empty()) {
        std::string response = parser_.responses().front();
        parser_.responses().erase(parser_.responses().begin());
        return response;
      }
      read_for(50ms);
    }
    return "";
  }
  // Reads for `duration`, counting the frames.
  void read_for(std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return;
      parser_.feed(buf, static_cast<std::size_t>(n));
    }
  }
  // DESCRIBE + SETUP of the first stream, interleaved channels 0-1.
  bool setup() {
    std::string describe = request("DESCRIBE", url_, "Accept: application/sdp\r\n");
    std::size_t base = describe.find("Content-Base: ");
    std::size_t control = describe.find("a=control:stream=");
    if (base == std::string::npos || control == std::string::npos) return false;
    base_ = describe.substr(base + 14, describe.find("\r\n", base) - base - 14);
    std::string stream = describe.substr(control + 10, describe.find_first_of("\r\n", control) - control - 10);
    std::string reply = request("SETUP", base_ + stream, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n");
    std::size_t session = reply.find("Session: ");
    if (session == std::string::npos) return false;
    session_ = reply.substr(session + 9, reply.find_first_of(";\r", session) - session - 9);
    return reply.rfind("RTSP/1.0 200", 0) == 0;
  }
  bool play() { return request("PLAY", base_, "").rfind("RTSP/1.0 200", 0) == 0; }
  bool pause() { return request("PAUSE", base_, "").rfind("RTSP/1.0 200", 0) == 0; }
  bool teardown() { return request("TEARDOWN", base_, "").rfind("RTSP/1.0 200", 0) == 0; }
  uint64_t rtp_frame_bytes() const { return parser_.rtp_frame_bytes(); }
  bool parse_error() const { return parser_.error(); }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string url_, user_agent_, base_, session_;
  int cseq_ = 0;
  RtspStreamParser parser_;
};

TEST_F(RtspServer, PausedSpansAreNotCountedOverTcp) {
  // Another viewer keeps the shared media playing while ours pauses.
  ChildProcess::Options o;
  o.argv = {"ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "udp", "-user_agent", "FFmpeg-Keeps-Playing",
            "-i", url(port_), "-t", "20", "-c", "copy", "-f", "null", "-"};
  ChildProcess other_viewer(o);
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    for (const auto& [id, r] : latest) if (r.user_agent == "FFmpeg-Keeps-Playing") return true;
    return false;
  }, 15s));

  const std::string ua = "RawRtsp-Pause-Test/1.0";
  RawRtspClient client(port_, url(port_), ua);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.setup());
  ASSERT_TRUE(client.play());
  client.read_for(1500ms);
  const uint64_t before_pause = client.rtp_frame_bytes();
  ASSERT_GT(before_pause, 10000u);
  ASSERT_TRUE(client.pause());
  client.read_for(2000ms);  // the stream keeps being produced; this client is not sent it
  const uint64_t during_pause = client.rtp_frame_bytes() - before_pause;
  ASSERT_TRUE(client.play());
  client.read_for(1500ms);
  ASSERT_GT(client.rtp_frame_bytes(), before_pause + during_pause + 10000) << "data flows again after PLAY";
  ASSERT_TRUE(client.teardown());
  ASSERT_FALSE(client.parse_error());

  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) { return closed_with_agent(latest, ua); }, 10s));
  auto latest = latest_by_session(spool_records(spool_));
  const SessionRecord& r = *closed_with_agent(latest, ua);
  const uint64_t received = client.rtp_frame_bytes();
  const uint64_t diff = r.bytes_out > received ? r.bytes_out - received : received - r.bytes_out;
  // Counting the 2 s of PAUSE (the media went on for the other viewer) would add
  // about 40 % of `received`.
  EXPECT_LE(diff, received / 20) << "counted " << r.bytes_out << ", received " << received;
  EXPECT_EQ(r.end_reason, streamtally::EndReason::Client);
  std::printf("RTSP/TCP with PAUSE: server bytes_out %llu, client received %llu (of which %llu while paused)\n",
              static_cast<unsigned long long>(r.bytes_out), static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(during_pause));
}

TEST_F(RtspServer, StoppingTheServerClosesOpenSessions) {
  const std::string ua = "FFmpeg-Long/5.1";
  ChildProcess::Options o;
  o.argv = {"ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-user_agent", ua,
            "-i", url(port_), "-t", "30", "-c", "copy", "-f", "null", "-"};
  ChildProcess client(o);
  ASSERT_TRUE(wait_for_records(spool_, [&](const auto& latest) {
    for (const auto& [id, r] : latest) if (r.user_agent == ua && r.bytes_out > 0) return true;
    return false;
  }, 15s));
  EXPECT_EQ(server_->stop(wrapped_ ? 60s : 10s), 0) << "SIGTERM: a clean exit (and no leak under valgrind)"
                                                  << streamtally::test::read_file(dir_.file("server.err"));
  auto latest = latest_by_session(spool_records(spool_));
  const SessionRecord* r = closed_with_agent(latest, ua);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->end_reason, streamtally::EndReason::Server);
  client.stop(2s);
}

}  // namespace
