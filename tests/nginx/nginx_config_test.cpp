// Directives: nginx units and on|off parse, and `nginx -t` names the directive and
// the bad value for every StreamTally directive that can be wrong.
#include <gtest/gtest.h>

#include <fstream>

#include "nginx_fixture.hpp"

using namespace streamtally::nginx_test;
using streamtally::test::read_file;

namespace {

struct BadValue {
  const char* where;  // "http_main", "http_location", "rtmp_main", "rtmp_app"
  const char* directive;
  const char* value;
};

NginxOptions with(const std::string& where, const std::string& text) {
  NginxOptions o;
  if (where == "http_main") o.http_main = text;
  if (where == "http_location") o.http_location = text;
  if (where == "rtmp_main") o.rtmp_main = text;
  if (where == "rtmp_app") o.rtmp_app = text;
  return o;
}

}  // namespace

TEST(NginxConfig, EveryDirectiveWithNginxUnitsPassesNginxT) {
  NginxOptions o;
  o.interim = "30s";
  o.rtmp_main = "streamtally_server_id edge-eu-1; streamtally_batch_size 200; streamtally_spool_max_size 64m;";
  o.rtmp_app = "streamtally_tag region eu; streamtally_token_arg t; streamtally_user_arg u;";
  o.http_main =
      "streamtally_server_id edge-eu-1; streamtally_batch_size 1000; streamtally_spool_max_size 1g; "
      "streamtally_zone 1m; streamtally_collector http://127.0.0.1:1/;";
  o.http_location =
      "streamtally_protocol dash; streamtally_stream live/$arg_s; streamtally_session_key $remote_addr$arg_sid; "
      "streamtally_user_id $arg_user; streamtally_tag cdn \"edge $server_port\";";
  o.session_timeout = "1m";
  Nginx nginx(o);
  auto r = nginx.test_config();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(NginxConfig, NginxTNamesTheDirectiveAndTheBadValue) {
  const BadValue cases[] = {
      {"http_main", "streamtally_session_timeout", "10q"},
      {"http_main", "streamtally", "maybe"},
      {"http_location", "streamtally_protocol", "smoke-signals"},
      {"http_location", "streamtally_tag", "bad/name"},
      {"http_main", "streamtally_spool_max_size", "lots"},
      {"http_main", "streamtally_zone", "1k"},
      {"http_main", "streamtally_collector", "ftp://collector.example"},
      {"http_main", "streamtally_batch_size", "0"},
      {"rtmp_main", "streamtally_interim", "never"},
      {"rtmp_main", "streamtally_flush", "0s"},
      {"rtmp_main", "streamtally", "yes"},
  };
  for (const auto& c : cases) {
    std::string line = std::string(c.directive) + " " + c.value;
    if (std::string(c.directive) == "streamtally_tag") line += " v";
    auto options = with(c.where, line + ";");
    options.interim = "";  // the fixture's own interim/flush lines would make ours duplicates
    Nginx nginx(options);
    auto r = nginx.test_config();
    EXPECT_NE(r.exit_code, 0) << line;
    EXPECT_NE(r.err.find(std::string("\"") + c.directive + "\""), std::string::npos) << line << "\n" << r.err;
    EXPECT_NE(r.err.find(std::string("\"") + c.value + "\""), std::string::npos) << line << "\n" << r.err;
  }
}

TEST(NginxConfig, StreamtallyOnWithoutASpoolIsRefused) {
  streamtally::test::TempDir dir;
  std::ofstream(dir.file("nginx.conf")) << "load_module " << http_module_path() << ";\n"
                                        << "pid " << dir.file("nginx.pid") << ";\nerror_log " << dir.file("e.log")
                                        << ";\nevents {}\nhttp { server { listen 127.0.0.1:"
                                        << streamtally::test::free_port()
                                        << "; location / { streamtally on; } } }\n";
  auto r = streamtally::test::run_command(
      {"/usr/sbin/nginx", "-t", "-p", dir.path().string(), "-c", dir.file("nginx.conf")}, std::chrono::seconds(20));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("\"streamtally_spool\""), std::string::npos) << r.err;
}

TEST(NginxConfig, HttpModuleLoadsWithoutNginxRtmp) {
  NginxOptions o;
  o.rtmp = false;
  Nginx nginx(o);
  EXPECT_EQ(nginx.config_text().find("ngx_rtmp_module"), std::string::npos);
  auto r = nginx.test_config();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// conf/nginx.conf, the documented example, stays valid: its system paths are
// moved into a temp dir and the modules come from this build.
TEST(NginxConfig, TheExampleConfigPassesNginxT) {
  streamtally::test::TempDir dir;
  std::string conf = read_file(streamtally::test::source_dir() + "/conf/nginx.conf");
  ASSERT_FALSE(conf.empty());
  auto replace = [&](const std::string& from, const std::string& to) {
    for (auto at = conf.find(from); at != std::string::npos; at = conf.find(from, at + to.size()))
      conf.replace(at, from.size(), to);
  };
  replace("include /etc/nginx/modules-enabled/*.conf;",
          "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nload_module " + rtmp_module_path() +
              ";\nload_module " + http_module_path() + ";");
  replace("/var/lib/streamtally/", dir.path().string() + "/");
  replace("/run/nginx.pid", dir.file("nginx.pid"));
  replace("/var/log/nginx/", dir.path().string() + "/");
  replace("listen 1935", "listen 127.0.0.1:" + std::to_string(streamtally::test::free_port()));
  replace("listen 8080", "listen 127.0.0.1:" + std::to_string(streamtally::test::free_port()));
  std::ofstream(dir.file("nginx.conf")) << conf;
  auto r = streamtally::test::run_command(
      {"/usr/sbin/nginx", "-t", "-p", dir.path().string(), "-c", dir.file("nginx.conf")}, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}
