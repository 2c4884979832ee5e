#include "collector_process.hpp"

#include <gtest/gtest.h>

#include "test_store.hpp"
#include "streamtally/gzip.hpp"

namespace streamtally::test {

std::string collector_binary() { return build_dir() + "/collector/streamtally-collector"; }

CollectorProcess::CollectorProcess(std::string db_path, std::vector<std::string> extra)
    : db_path_(std::move(db_path)),
      log_path_((db_path_.starts_with("sqlite:") ? db_path_.substr(7) : db_path_) + ".log"),
      port_(free_port()) {
  ChildProcess::Options options;
  options.argv = {collector_binary(), "--listen", "127.0.0.1:" + std::to_string(port_), "--store",
                  test_store_spec(db_path_), "--ingest-token", kIngestToken, "--threads", "4"};
  options.argv.insert(options.argv.end(), extra.begin(), extra.end());
  options.stderr_path = log_path_;
  options.stdout_path = log_path_ + ".out";
  child_ = std::make_unique<ChildProcess>(options);
  // Loading the geo ranges and compiling the user-agent regexes takes a moment.
  started_ = wait_until(
      [&] {
        if (!child_->running()) return true;
        return http_request("GET", url("/healthz"), "", {}, std::chrono::milliseconds(1000)).status == 200;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  started_ = started_ && child_->running();
}

CollectorProcess::~CollectorProcess() {
  if (child_) child_->stop();
}

int CollectorProcess::stop() {
  const int code = child_->stop(std::chrono::seconds(20));
  started_ = false;
  return code;
}

std::string CollectorProcess::url(const std::string& path_and_query) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path_and_query;
}

HttpResponse CollectorProcess::post_lines(const std::vector<std::string>& lines, const std::string& key) const {
  std::string body;
  for (const auto& line : lines) body += line + "\n";
  std::map<std::string, std::string> headers{{"Content-Type", "application/x-ndjson"},
                                             {"Content-Encoding", "gzip"},
                                             {"Authorization", std::string("Bearer ") + kIngestToken}};
  if (!key.empty()) headers["Idempotency-Key"] = key;
  return post(gzip_compress(body), headers);
}

HttpResponse CollectorProcess::post(const std::string& body, const std::map<std::string, std::string>& headers) const {
  return http_request("POST", url("/v1/batches"), body, headers, std::chrono::seconds(60));
}

HttpResponse CollectorProcess::get(const std::string& path_and_query,
                                   const std::map<std::string, std::string>& headers) const {
  return http_request("GET", url(path_and_query), "", headers, std::chrono::seconds(60));
}

nlohmann::json CollectorProcess::get_json(const std::string& path_and_query) const {
  const HttpResponse r = get(path_and_query);
  EXPECT_EQ(r.status, 200) << path_and_query << " -> " << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << path_and_query << " -> " << r.body.substr(0, 300);
  return j;
}

}  // namespace streamtally::test
