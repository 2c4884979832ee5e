#include "clickhouse_server.hpp"

#include <fstream>

namespace streamtally::test {

ClickHouseServer::ClickHouseServer() : http_port_(free_port()) {
  const std::string data = dir_.file("data/");
  std::ofstream(dir_.file("config.xml"))
      << "<?xml version=\"1.0\"?>\n<yandex>\n"
      << "  <logger><level>warning</level><log>" << dir_.file("server.log") << "</log><errorlog>"
      << dir_.file("server.err.log") << "</errorlog><size>10M</size><count>1</count></logger>\n"
      << "  <listen_host>127.0.0.1</listen_host>\n"
      << "  <http_port>" << http_port_ << "</http_port>\n"
      << "  <tcp_port>" << free_port() << "</tcp_port>\n"
      << "  <path>" << data << "</path>\n  <tmp_path>" << data << "tmp/</tmp_path>\n"
      << "  <user_files_path>" << data << "user_files/</user_files_path>\n"
      << "  <format_schema_path>" << data << "format_schemas/</format_schema_path>\n"
      << "  <users_config>/etc/clickhouse-server/users.xml</users_config>\n"
      << "  <default_profile>default</default_profile>\n  <default_database>default</default_database>\n"
      << "  <timezone>UTC</timezone>\n  <mark_cache_size>268435456</mark_cache_size>\n"
      << "  <uncompressed_cache_size>268435456</uncompressed_cache_size>\n</yandex>\n";
  start();
}

bool ClickHouseServer::start() {
  ChildProcess::Options options;
  options.argv = {"clickhouse-server", "--config-file=" + dir_.file("config.xml")};
  options.stdout_path = dir_.file("stdout.log");
  options.stderr_path = dir_.file("stderr.log");
  child_ = std::make_unique<ChildProcess>(options);
  started_ = wait_until(
      [&] {
        if (!child_->running()) return true;
        const HttpResponse r = http_request("GET", "http://127.0.0.1:" + std::to_string(http_port_) + "/?query=SELECT%201",
                                            "", {}, std::chrono::milliseconds(1000));
        return r.status == 200;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  started_ = started_ && child_->running();
  return started_;
}

void ClickHouseServer::stop() {
  if (child_) child_->stop(std::chrono::seconds(20));
  child_.reset();
  started_ = false;
}

ClickHouseServer::~ClickHouseServer() { stop(); }

std::string ClickHouseServer::log() const {
  std::string out;
  for (const char* name : {"stderr.log", "server.err.log"}) out += read_file(dir_.file(name));
  return out;
}

std::string ClickHouseServer::store_url(const std::string& database) const {
  return "clickhouse://127.0.0.1:" + std::to_string(http_port_) + "/" + database;
}

}  // namespace streamtally::test
