#include "nginx_fixture.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <dirent.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"

namespace streamtally::nginx_test {

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// Parent pid and command line of a process (from /proc).
std::optional<pid_t> parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

std::string http_module_path() { return STREAMTALLY_NGX_HTTP_MODULE; }
std::string rtmp_module_path() { return STREAMTALLY_NGX_RTMP_MODULE; }

Nginx::Nginx(NginxOptions options) : options_(std::move(options)) {
  rtmp_port_ = test::free_port();
  http_port_ = test::free_port();
  std::filesystem::create_directories(hls_dir());
  ::chmod(hls_dir().c_str(), 0777);
  write_config();
}

Nginx::~Nginx() {
  if (master_ && master_->running()) stop(10s);
}

std::string Nginx::config_text() const { return test::read_file(dir_.file("nginx.conf")); }

void Nginx::write_config() {
  const std::string dir = dir_.path().string();
  std::string main_settings = "streamtally_spool " + spool_path() + ";\n";
  if (!options_.interim.empty())
    main_settings += "    streamtally_interim " + options_.interim + ";\n    streamtally_flush 1s;\n";
  if (!options_.collector_url.empty())
    main_settings += "    streamtally_collector " + options_.collector_url + ";\n    streamtally_collector_token ingest-secret;\n";

  std::string conf = R"(daemon off;
master_process on;
user nobody nogroup;
worker_processes @WORKERS@;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log info;
)";
  if (options_.rtmp) {
    conf += "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n";
    conf += "load_module " + rtmp_module_path() + ";\n";
  }
  if (options_.http) conf += "load_module " + http_module_path() + ";\n";
  conf += "events { worker_connections 512; }\n";
  if (options_.rtmp) {
    // No rtmp_auto_push: with Debian's dynamic ngx_rtmp_module.so its relays
    // between workers never arrive (checked without our module), so RTMP tests
    // use one worker and the multi-worker tests are HTTP.
    conf += R"(rtmp {
    @MAIN@
    log_format st '$command "$app" "$name" "$args" $bytes_received $bytes_sent "$pageurl" "$flashver"';
    access_log @DIR@/rtmp_access.log st;
    @RTMP_MAIN@
    server {
        listen 127.0.0.1:@RTMP_PORT@;
        application app {
            live on;
            streamtally on;
            hls on;
            hls_path @DIR@/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
            @RTMP_APP@
        }
    }
}
)";
  }
  conf += R"(http {
    log_format st '"$http_user_agent" "$arg_token" "$uri" $status $bytes_sent $request_length $pid';
    access_log @DIR@/http_access.log st;
    client_body_temp_path @DIR@/body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    keepalive_timeout 5s;
)";
  if (options_.http) conf += "    @MAIN@\n    @HTTP_MAIN@\n";
  conf += R"(    server {
        listen 127.0.0.1:@HTTP_PORT@ reuseport;
        location /hls/ {
            alias @DIR@/hls/;
)";
  if (options_.http)
    conf += "            streamtally on;\n            streamtally_session_timeout @TIMEOUT@;\n"
            "            streamtally_token $arg_token;\n            @HTTP_LOCATION@\n";
  conf += R"(        }
        location /plain/ {
            alias @DIR@/hls/;
        }
    }
}
)";
  conf = replace_all(conf, "@MAIN@", main_settings);
  conf = replace_all(conf, "@RTMP_MAIN@", options_.rtmp_main);
  conf = replace_all(conf, "@RTMP_APP@", options_.rtmp_app);
  conf = replace_all(conf, "@HTTP_MAIN@", options_.http_main);
  conf = replace_all(conf, "@HTTP_LOCATION@", options_.http_location);
  conf = replace_all(conf, "@TIMEOUT@", options_.session_timeout);
  conf = replace_all(conf, "@WORKERS@", std::to_string(options_.workers));
  conf = replace_all(conf, "@RTMP_PORT@", std::to_string(rtmp_port_));
  conf = replace_all(conf, "@HTTP_PORT@", std::to_string(http_port_));
  conf = replace_all(conf, "@DIR@", dir);
  std::ofstream(dir_.file("nginx.conf")) << conf;
}

test::CommandResult Nginx::test_config() const {
  return test::run_command({"/usr/sbin/nginx", "-t", "-p", dir_.path().string(), "-c", dir_.file("nginx.conf")},
                           20s);
}

void Nginx::start() {
  test::ChildProcess::Options o;
  o.argv = {"/usr/sbin/nginx", "-p", dir_.path().string(), "-c", dir_.file("nginx.conf")};
  o.stdout_path = dir_.file("nginx.stdout");
  o.stderr_path = dir_.file("nginx.stderr");
  master_ = std::make_unique<test::ChildProcess>(std::move(o));
  const bool up = test::wait_for_port(http_port_, 10s) && (!options_.rtmp || test::wait_for_port(rtmp_port_, 10s));
  if (!up)
    throw std::runtime_error("nginx did not start: " + test::read_file(dir_.file("nginx.stderr")) + error_log());
  // All workers up (each opens its spool context in init_process).
  test::wait_until([&] { return static_cast<int>(worker_pids().size()) >= options_.workers; }, 10s);
}

void Nginx::reload() {
  const auto before = worker_pids();
  master_->signal(SIGHUP);
  // New workers are those that were not there before.
  test::wait_until(
      [&] {
        int fresh = 0;
        for (pid_t p : worker_pids())
          if (std::find(before.begin(), before.end(), p) == before.end()) fresh++;
        return fresh >= options_.workers;
      },
      10s);
}

std::optional<int> Nginx::quit(std::chrono::milliseconds timeout) {
  master_->signal(SIGQUIT);
  return master_->wait(timeout);
}

std::optional<int> Nginx::stop(std::chrono::milliseconds timeout) {
  master_->signal(SIGTERM);
  return master_->wait(timeout);
}

pid_t Nginx::master_pid() const { return master_ ? master_->pid() : -1; }

std::vector<pid_t> Nginx::worker_pids() const {
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (!proc) return pids;
  while (dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    if (parent_of(pid) != master_pid()) continue;
    const std::string cmdline = test::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    if (cmdline.rfind("nginx: worker process", 0) == 0 && cmdline.find("shutting down") == std::string::npos)
      pids.push_back(pid);
  }
  ::closedir(proc);
  return pids;
}

std::string Nginx::rtmp_url(const std::string& name_and_args) const {
  return "rtmp://127.0.0.1:" + std::to_string(rtmp_port_) + "/app/" + name_and_args;
}

std::string Nginx::http_url(const std::string& path_and_query) const {
  return "http://127.0.0.1:" + std::to_string(http_port_) + path_and_query;
}

std::vector<Nginx::RtmpLogLine> Nginx::rtmp_access_log() const {
  static const std::regex line_re(R"re(^(\w+) "([^"]*)" "([^"]*)" "([^"]*)" (\d+) (\d+) "([^"]*)" "([^"]*)"$)re");
  std::vector<RtmpLogLine> out;
  std::istringstream in(test::read_file(dir_.file("rtmp_access.log")));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    out.push_back({m[1], m[2], m[3], m[4], m[7], m[8], std::stoull(m[5]), std::stoull(m[6])});
  }
  return out;
}

std::vector<Nginx::HttpLogLine> Nginx::http_access_log() const {
  static const std::regex line_re(R"re(^"([^"]*)" "([^"]*)" "([^"]*)" (\d+) (\d+) (\d+) (\d+)$)re");
  std::vector<HttpLogLine> out;
  std::istringstream in(test::read_file(dir_.file("http_access.log")));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    HttpLogLine l;
    l.user_agent = m[1];
    l.token = m[2];
    l.uri = m[3];
    l.status = std::stoi(m[4]);
    l.bytes_sent = std::stoull(m[5]);
    l.request_length = std::stoull(m[6]);
    l.worker = static_cast<pid_t>(std::stol(m[7]));
    out.push_back(l);
  }
  return out;
}

std::vector<SessionRecord> spool_sessions(const std::string& spool_path) {
  std::map<std::string, SessionRecord> newest;
  if (!std::filesystem::exists(spool_path)) return {};
  auto spool = Spool::open({.path = spool_path});
  if (!spool.ok()) throw std::runtime_error("spool: " + spool.error());
  auto lines = (*spool)->pending_lines();
  if (!lines.ok()) throw std::runtime_error("spool: " + lines.error());
  for (const auto& line : *lines) {
    auto rec = decode_record(line);
    if (!rec.ok()) throw std::runtime_error("undecodable spool line: " + line);
    const std::string id = rec->session_id;
    auto it = newest.find(id);
    if (it == newest.end() || it->second.seq < rec->seq) newest[id] = std::move(rec).value();
  }
  std::vector<SessionRecord> out;
  for (auto& [id, rec] : newest) out.push_back(std::move(rec));
  return out;
}

std::vector<SessionRecord> wait_for_closed(const std::string& spool_path, std::size_t count,
                                           std::chrono::milliseconds timeout,
                                           const std::function<bool(const SessionRecord&)>& match) {
  std::vector<SessionRecord> closed;
  test::wait_until(
      [&] {
        closed.clear();
        for (auto& r : spool_sessions(spool_path))
          if (r.state == SessionState::Closed && match(r)) closed.push_back(r);
        return closed.size() >= count;
      },
      timeout, 200ms);
  return closed;
}

std::string describe(const std::vector<SessionRecord>& records) {
  std::string out;
  for (const auto& r : records)
    out += r.session_id + " seq=" + std::to_string(r.seq) + " " + std::string(to_string(r.state)) + " " +
           std::string(to_string(r.type)) + " " + std::string(to_string(r.protocol)) + " " + r.stream +
           " token=" + r.token.value_or("null") + " ua=" + r.user_agent + " in=" + std::to_string(r.bytes_in) +
           " out=" + std::to_string(r.bytes_out) + " end=" + std::string(to_string(r.end_reason)) + "\n";
  return out;
}

std::unique_ptr<test::ChildProcess> ffmpeg_publish(const std::string& url, int seconds, const std::string& log_path) {
  test::ChildProcess::Options o;
  o.argv = {"ffmpeg", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-c:a", "aac", "-b:a", "64k", "-t", std::to_string(seconds), "-f", "flv", url};
  o.stderr_path = log_path;
  return std::make_unique<test::ChildProcess>(std::move(o));
}

std::unique_ptr<test::ChildProcess> ffmpeg_play(const std::string& url, const std::string& pageurl,
                                                const std::string& flashver, int seconds,
                                                const std::string& log_path) {
  test::ChildProcess::Options o;
  o.argv = {"ffmpeg", "-nostdin", "-loglevel", "error", "-rtmp_pageurl", pageurl, "-rtmp_flashver", flashver,
            "-i", url, "-t", std::to_string(seconds), "-c", "copy", "-f", "null", "-"};
  o.stderr_path = log_path;
  return std::make_unique<test::ChildProcess>(std::move(o));
}

CurlResult curl_get(const std::string& url, const std::string& user_agent, const std::string& referer) {
  auto r = test::run_command({"curl", "-s", "-o", "/dev/null", "-A", user_agent, "-e", referer, "-w",
                              "%{http_code} %{size_download} %{size_header} %{size_request}", url},
                             10s);
  CurlResult out;
  out.exit_code = r.exit_code;
  std::istringstream(r.out) >> out.status >> out.size_download >> out.size_header >> out.size_request;
  return out;
}

}  // namespace streamtally::nginx_test
