// Test fixture for the nginx modules: Debian's real /usr/sbin/nginx (master +
// workers running as nobody) with a generated config in a TempDir, listening on
// free 127.0.0.1 ports; ffmpeg publishers/players; the ground truth nginx writes
// itself (nginx-rtmp's and nginx's access logs); and the records in the spool.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "streamtally/record.hpp"
#include "test_support.hpp"

namespace streamtally::nginx_test {

using namespace std::chrono_literals;

struct NginxOptions {
  int workers = 1;
  bool rtmp = true;            // load nginx-rtmp + our RTMP module, an rtmp{} block
  bool http = true;            // our HTTP module, an http{} block
  std::string rtmp_main;       // extra directives in rtmp{}
  std::string rtmp_app;        // extra directives in application app{}
  std::string http_main;       // extra directives in http{}
  std::string http_location;   // extra directives in location /hls/
  std::string interim = "1s";  // empty: neither streamtally_interim nor streamtally_flush
  std::string session_timeout = "2s";
  std::string collector_url;   // empty: spool only
};

class Nginx {
 public:
  explicit Nginx(NginxOptions options);
  ~Nginx();

  // `nginx -t` on the generated config.
  test::CommandResult test_config() const;

  // Starts the master (daemon off) and waits until both ports answer.
  void start();
  // `nginx -s reload` / `-s quit` / `-s stop` through signals to the master.
  void reload();
  // Graceful quit; returns the master's exit code (nullopt: did not exit in time).
  std::optional<int> quit(std::chrono::milliseconds timeout = 20s);
  std::optional<int> stop(std::chrono::milliseconds timeout = 20s);

  pid_t master_pid() const;
  std::vector<pid_t> worker_pids() const;  // "nginx: worker process" children

  int rtmp_port() const { return rtmp_port_; }
  int http_port() const { return http_port_; }
  std::string rtmp_url(const std::string& name_and_args) const;
  std::string http_url(const std::string& path_and_query) const;
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string spool_path() const { return dir_.file("spool.db"); }
  std::string hls_dir() const { return dir_.file("hls"); }
  std::string error_log() const { return test::read_file(dir_.file("error.log")); }
  std::string config_text() const;

  // nginx-rtmp's access log (ground truth for RTMP bytes, 32-bit).
  struct RtmpLogLine {
    std::string command, app, name, args, pageurl, flashver;
    uint64_t bytes_received = 0, bytes_sent = 0;
  };
  std::vector<RtmpLogLine> rtmp_access_log() const;
  // nginx's HTTP access log: $bytes_sent (header + body) and $request_length per request.
  struct HttpLogLine {
    std::string user_agent, token, uri;
    int status = 0;
    uint64_t bytes_sent = 0, request_length = 0;
    pid_t worker = 0;
  };
  std::vector<HttpLogLine> http_access_log() const;

 private:
  void write_config();

  NginxOptions options_;
  test::TempDir dir_;
  int rtmp_port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<test::ChildProcess> master_;
};

// The newest record of every session in the spool (what the collector would keep).
std::vector<SessionRecord> spool_sessions(const std::string& spool_path);
// Waits until the spool holds `count` closed sessions matching the predicate.
std::vector<SessionRecord> wait_for_closed(const std::string& spool_path, std::size_t count,
                                           std::chrono::milliseconds timeout,
                                           const std::function<bool(const SessionRecord&)>& match =
                                               [](const SessionRecord&) { return true; });

// One line per record (for failure messages).
std::string describe(const std::vector<SessionRecord>& records);

// ffmpeg: a lavfi test source published over RTMP for `seconds`.
std::unique_ptr<test::ChildProcess> ffmpeg_publish(const std::string& url, int seconds,
                                                   const std::string& log_path = "");
// ffmpeg: an RTMP player with pageUrl / flashVer that plays for `seconds`. ffmpeg 5.1
// stalls with flashVers not starting "LNX"/"MAC" (e.g. "WIN ..."): use those.
std::unique_ptr<test::ChildProcess> ffmpeg_play(const std::string& url, const std::string& pageurl,
                                                const std::string& flashver, int seconds,
                                                const std::string& log_path = "");

// One HTTP GET through curl (a real client); sizes as curl counted them.
struct CurlResult {
  int exit_code = -1;
  long status = 0;
  uint64_t size_download = 0, size_header = 0, size_request = 0;
};
CurlResult curl_get(const std::string& url, const std::string& user_agent, const std::string& referer);

// The module files the build produced (passed by CMake).
std::string http_module_path();
std::string rtmp_module_path();

}  // namespace streamtally::nginx_test
