// The RTMP module's byte counting (nginx-module/src/ngx_rtmp_streamtally_io.c)
// past 4 GiB: nginx-rtmp's own counters are 32-bit and reset near 3.75 GB, ours
// must not be. Real bytes through a real socket pair, read through the wrapped
// c->recv and written through c->send exactly as nginx-rtmp calls them (bytes out
// come from c->sent, handed over by io_sync); the ground truth is what the peer
// thread wrote / read, counted independently.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rtmp_streamtally_io.h"
}

#include "streamtally.h"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"
#include "test_support.hpp"

namespace {

// More than 2^32, and not a multiple of the chunk size.
constexpr uint64_t kTotal = (4ull << 30) + (300ull << 20) + 12345;
constexpr size_t kChunk = 1 << 20;

ngx_rtmp_streamtally_io_t g_io;

// What nginx's ngx_unix_recv / ngx_unix_send do, minus the event flags.
ssize_t plain_recv(ngx_connection_t* c, u_char* buf, size_t size) {
  ssize_t n = ::recv(c->fd, buf, size, 0);
  if (n == -1) return (errno == EAGAIN) ? NGX_AGAIN : NGX_ERROR;
  return n;
}
ssize_t plain_send(ngx_connection_t* c, u_char* buf, size_t size) {
  ssize_t n = ::send(c->fd, buf, size, MSG_NOSIGNAL);
  if (n == -1) return (errno == EAGAIN) ? NGX_AGAIN : NGX_ERROR;
  c->sent += n;
  return n;
}

class RtmpIoCounting : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
    int size = 4 << 20;
    for (int fd : fds_) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    spool_ = dir_.file("spool.db");
    streamtally_config_t config{};
    config.spool_path = spool_.c_str();
    config.interim_ms = 3600000;
    ASSERT_EQ(streamtally_ctx_create(&config, &ctx_), STREAMTALLY_OK);

    streamtally_session_info_t info{};
    info.type = STREAMTALLY_PUBLISH;
    info.protocol = STREAMTALLY_PROTO_RTMP;
    info.stream = {"app/big", 7};
    info.client_ip = {"127.0.0.1", 9};
    ASSERT_EQ(streamtally_session_open(ctx_, &info, &session_), STREAMTALLY_OK);

    conn_ = {};
    conn_.fd = fds_[0];
    conn_.recv = plain_recv;
    conn_.send = plain_send;
    g_io = {};
    g_io.session = session_;
    ngx_rtmp_streamtally_io_attach(&g_io, &conn_);
  }
  void TearDown() override {
    if (session_) streamtally_session_free(session_);
    if (ctx_) streamtally_ctx_destroy(ctx_, 5000);
    for (int fd : fds_) ::close(fd);
  }

  streamtally::test::TempDir dir_;
  std::string spool_;
  int fds_[2] = {-1, -1};
  streamtally_ctx_t* ctx_ = nullptr;
  streamtally_session_t* session_ = nullptr;
  ngx_connection_t conn_;
};

}  // namespace

extern "C" ngx_rtmp_streamtally_io_t* ngx_rtmp_streamtally_io_of(ngx_connection_t*) { return &g_io; }

TEST_F(RtmpIoCounting, CountsBothDirectionsPastFourGiBExactly) {
  ASSERT_NE(conn_.recv, plain_recv) << "attach must route reads through the counter";

  // Inbound: a peer writes kTotal bytes, the wrapped recv reads them.
  uint64_t peer_wrote = 0;
  std::thread writer([&] {
    std::vector<char> buf(kChunk, 'x');
    while (peer_wrote < kTotal) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, kTotal - peer_wrote));
      ssize_t n = ::send(fds_[1], buf.data(), want, MSG_NOSIGNAL);
      if (n <= 0) break;
      peer_wrote += static_cast<uint64_t>(n);
    }
  });
  std::vector<u_char> buf(kChunk);
  uint64_t read_total = 0;
  while (read_total < kTotal) {
    ssize_t n = conn_.recv(&conn_, buf.data(), buf.size());
    ASSERT_GT(n, 0);
    read_total += static_cast<uint64_t>(n);
  }
  writer.join();

  // Outbound: the wrapped send writes kTotal bytes, a peer reads them.
  uint64_t peer_read = 0;
  std::thread reader([&] {
    std::vector<char> rbuf(kChunk);
    while (peer_read < kTotal) {
      ssize_t n = ::recv(fds_[1], rbuf.data(), rbuf.size(), 0);
      if (n <= 0) break;
      peer_read += static_cast<uint64_t>(n);
    }
  });
  uint64_t sent_total = 0;
  uint64_t synced_out = 0;
  while (sent_total < kTotal) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, kTotal - sent_total));
    ssize_t n = conn_.send(&conn_, buf.data(), want);
    ASSERT_GT(n, 0);
    sent_total += static_cast<uint64_t>(n);
    if (sent_total > (2ull << 30) && synced_out == 0) {  // a sync on the way (the module's timer)
      ngx_rtmp_streamtally_io_sync(&g_io, &conn_);
      streamtally_session_bytes(session_, nullptr, &synced_out);
      EXPECT_EQ(synced_out, sent_total);
    }
  }
  reader.join();
  ngx_rtmp_streamtally_io_sync(&g_io, &conn_);  // as at close

  ASSERT_EQ(peer_wrote, kTotal);
  ASSERT_EQ(peer_read, kTotal);
  uint64_t in = 0, out = 0;
  streamtally_session_bytes(session_, &in, &out);
  EXPECT_EQ(in, peer_wrote);
  EXPECT_EQ(out, peer_read);
  EXPECT_EQ(static_cast<uint64_t>(conn_.sent), peer_read);  // nginx's own 64-bit counter agrees

  // The closed record in the spool carries the same 64-bit totals.
  ASSERT_EQ(streamtally_session_close(session_, STREAMTALLY_END_CLIENT), STREAMTALLY_OK);
  ASSERT_EQ(streamtally_ctx_flush(ctx_, 10000), STREAMTALLY_OK);
  auto spool = streamtally::Spool::open({.path = spool_});
  ASSERT_TRUE(spool.ok()) << spool.error();
  auto lines = (*spool)->pending_lines();
  ASSERT_TRUE(lines.ok()) << lines.error();
  bool found = false;
  for (const auto& line : *lines) {
    auto rec = streamtally::decode_record(line);
    ASSERT_TRUE(rec.ok()) << rec.error();
    if (rec->session_id != streamtally_session_id(session_) || rec->state != streamtally::SessionState::Closed)
      continue;
    found = true;
    EXPECT_EQ(rec->bytes_in, kTotal);
    EXPECT_EQ(rec->bytes_out, kTotal);
  }
  EXPECT_TRUE(found) << "no closed record of the session in the spool";
}

TEST_F(RtmpIoCounting, WouldBlockAndErrorsCountNothing) {
  ASSERT_EQ(::fcntl(fds_[0], F_SETFL, O_NONBLOCK), 0);
  u_char buf[64];
  EXPECT_EQ(conn_.recv(&conn_, buf, sizeof buf), NGX_AGAIN);
  ::shutdown(fds_[1], SHUT_WR);
  EXPECT_EQ(conn_.recv(&conn_, buf, sizeof buf), 0);  // EOF
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(conn_.send(&conn_, buf, sizeof buf), NGX_ERROR);  // EPIPE
  ngx_rtmp_streamtally_io_sync(&g_io, &conn_);
  uint64_t in = 1, out = 1;
  streamtally_session_bytes(session_, &in, &out);
  EXPECT_EQ(in, 0u);
  EXPECT_EQ(out, 0u);
}

// A second session on the connection counts from where the first one stopped.
TEST_F(RtmpIoCounting, BytesOutCountFromTheSessionsStart) {
  std::thread reader([&] {
    char rbuf[4096];
    for (uint64_t got = 0; got < 3000;) {
      ssize_t n = ::recv(fds_[1], rbuf, sizeof rbuf, 0);
      if (n <= 0) break;
      got += static_cast<uint64_t>(n);
    }
  });
  u_char buf[1000] = {};
  ASSERT_EQ(conn_.send(&conn_, buf, sizeof buf), 1000);
  g_io.sent_base = conn_.sent;  // as the module does for a later session
  ASSERT_EQ(conn_.send(&conn_, buf, sizeof buf), 1000);
  ASSERT_EQ(conn_.send(&conn_, buf, sizeof buf), 1000);
  reader.join();
  ngx_rtmp_streamtally_io_sync(&g_io, &conn_);
  uint64_t in = 1, out = 0;
  streamtally_session_bytes(session_, &in, &out);
  EXPECT_EQ(out, 2000u);
}

TEST_F(RtmpIoCounting, DetachRestoresTheOriginalsAndStopsCounting) {
  ngx_rtmp_streamtally_io_detach(&g_io, &conn_);
  EXPECT_EQ(conn_.recv, plain_recv);
  EXPECT_EQ(conn_.send, plain_send) << "the send path is never wrapped";
  u_char byte = 'a';
  ASSERT_EQ(::send(fds_[1], &byte, 1, MSG_NOSIGNAL), 1);
  ASSERT_EQ(conn_.recv(&conn_, &byte, 1), 1);
  uint64_t in = 1, out = 1;
  streamtally_session_bytes(session_, &in, &out);
  EXPECT_EQ(in, 0u);
}
