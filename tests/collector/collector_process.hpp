// A real streamtally-collector process on 127.0.0.1 and a free port, with helpers to
// send batches and read JSON. Stopped by pid (SIGTERM) in the destructor.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace streamtally::test {

inline constexpr const char* kIngestToken = "ingest-secret";

class CollectorProcess {
 public:
  // db_path: the SQLite file, or names the ClickHouse database (test_store_spec());
  // "sqlite:PATH" is SQLite in any case. The log goes next to it.
  // extra: more command-line arguments.
  explicit CollectorProcess(std::string db_path, std::vector<std::string> extra = {});
  ~CollectorProcess();

  bool started() const { return started_; }
  const std::string& log_path() const { return log_path_; }
  std::string url(const std::string& path_and_query) const;
  // SIGTERM; returns the exit code.
  int stop();
  pid_t pid() const { return child_ ? child_->pid() : -1; }

  // POST /v1/batches with gzip NDJSON, the ingest token and an Idempotency-Key.
  HttpResponse post_lines(const std::vector<std::string>& lines, const std::string& key) const;
  HttpResponse post(const std::string& body, const std::map<std::string, std::string>& headers) const;
  HttpResponse get(const std::string& path_and_query, const std::map<std::string, std::string>& headers = {}) const;
  // GET, expecting 200 and JSON.
  nlohmann::json get_json(const std::string& path_and_query) const;

 private:
  std::string db_path_, log_path_;
  int port_ = 0;
  bool started_ = false;
  std::unique_ptr<ChildProcess> child_;
};

std::string collector_binary();

}  // namespace streamtally::test
