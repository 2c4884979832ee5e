// A real clickhouse-server (Debian's) for tests and benchmarks: its own config, data directory and
// free ports on 127.0.0.1, stopped by pid in the destructor.
#pragma once

#include <memory>
#include <string>

#include "test_support.hpp"

namespace streamtally::test {

class ClickHouseServer {
 public:
  ClickHouseServer();  // starts it
  ~ClickHouseServer();

  // Stops it by pid (SIGTERM) / starts it again on the same port and data.
  void stop();
  bool start();
  bool started() const { return started_; }
  int http_port() const { return http_port_; }
  std::string log() const;  // what the server wrote, for failure messages
  // The collector's --store for a database on this server.
  std::string store_url(const std::string& database) const;

 private:
  TempDir dir_;
  int http_port_ = 0;
  bool started_ = false;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace streamtally::test
