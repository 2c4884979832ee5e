// What the collector refuses, and that a refused request stores nothing.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <zlib.h>

#include <fstream>

#include "collector_process.hpp"
#include "streamtally/gzip.hpp"

namespace streamtally::test {
namespace {

using nlohmann::json;

std::string good_line(const std::string& session = "s-good", int64_t seq = 0) {
  return json{{"server_id", "srv"}, {"host", "h"}, {"session_id", session}, {"seq", seq}, {"state", "open"},
              {"type", "play"}, {"protocol", "hls"}, {"stream", "live/a"}, {"client_ip", "8.8.8.8"},
              {"user_agent", "VLC/3.0.18 LibVLC/3.0.18"}, {"referer", ""}, {"user_id", nullptr}, {"token", nullptr},
              {"started_at", 1790000000000LL}, {"updated_at", 1790000060000LL}, {"ended_at", nullptr},
              {"bytes_in", 1}, {"bytes_out", 1000}, {"end_reason", nullptr}}
      .dump();
}

std::string with(const std::string& field, const json& value) {
  json j = json::parse(good_line("s-bad"));
  j[field] = value;
  return j.dump();
}

std::map<std::string, std::string> ingest_headers(const std::string& encoding = "gzip") {
  std::map<std::string, std::string> h{{"Content-Type", "application/x-ndjson"},
                                       {"Authorization", std::string("Bearer ") + kIngestToken}};
  if (!encoding.empty()) h["Content-Encoding"] = encoding;
  return h;
}

// A gzip stream of `size` zero bytes, built incrementally (a few KiB on the wire).
std::string gzip_bomb(std::size_t size) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string zeros(1 << 20, '\0'), out;
  char buffer[1 << 16];
  for (std::size_t done = 0; done < size; done += zeros.size()) {
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = static_cast<uInt>(zeros.size());
    const int flush = done + zeros.size() >= size ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      deflate(&z, flush);
      out.append(buffer, sizeof buffer - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    collector_ = std::make_unique<CollectorProcess>(dir_.file("c.db"));
    ASSERT_TRUE(collector_->started()) << read_file(collector_->log_path());
  }
  int64_t stored_sessions() {
    return collector_->get_json("/healthz").at("sessions").get<int64_t>();
  }
  TempDir dir_;
  std::unique_ptr<CollectorProcess> collector_;
};

TEST_F(BadInput, EveryBadLineRejectsTheWholeBatchNamingTheLine) {
  struct Case {
    const char* what;
    std::string line;
    const char* message_part;
  };
  const std::vector<Case> cases{
      {"malformed JSON", "{\"server_id\": \"srv\", ", "malformed JSON"},
      {"not an object", "[1,2,3]", "object"},
      {"wrong type", with("seq", "three"), "seq"},
      {"negative counter", with("bytes_out", -5), "bytes_out"},
      {"float counter", with("bytes_in", 1.5), "bytes_in"},
      {"unknown enum", with("protocol", "carrier-pigeon"), "protocol"},
      {"unknown state", with("state", "paused"), "state"},
      {"invalid UTF-8", "{\"server_id\":\"srv\",\"user_agent\":\"\xff\xfe\"}", "UTF-8"},
      {"10 MB user-agent", with("user_agent", std::string(10 << 20, 'A')), "user_agent"},
      {"missing session_id", [] { json j = json::parse(good_line()); j.erase("session_id"); return j.dump(); }(),
       "session_id"},
      {"closed without ended_at", with("state", "closed"), "ended_at"},
      {"counter beyond 2^63", with("bytes_out", 18'000'000'000'000'000'000ULL), "2^63"},
      // Took the collector down with a stack overflow before the depth bound.
      {"10 MB of nesting", "{\"x\":" + std::string(5 << 20, '[') + std::string(5 << 20, ']') + "}", "nested deeper"},
  };
  for (const Case& c : cases) {
    const std::string body = good_line("s-a") + "\n" + good_line("s-b") + "\n" + c.line + "\n" + good_line("s-c") + "\n";
    const HttpResponse r = collector_->post(gzip_compress(body), ingest_headers());
    EXPECT_EQ(r.status, 400) << c.what << ": " << r.body.substr(0, 200);
    const json answer = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(answer.is_discarded()) << c.what;
    EXPECT_EQ(answer.value("line", 0), 3) << c.what << ": " << r.body.substr(0, 200);
    EXPECT_NE(answer.value("error", "").find(c.message_part), std::string::npos) << c.what << ": " << r.body.substr(0, 300);
  }
  EXPECT_EQ(stored_sessions(), 0);
}

TEST_F(BadInput, TransportLevelRefusals) {
  const std::string body = good_line() + "\n";
  struct Case {
    const char* what;
    std::string body;
    std::map<std::string, std::string> headers;
    long status;
  };
  auto headers_without = [](const char* name) {
    auto h = ingest_headers();
    h.erase(name);
    return h;
  };
  auto headers_with = [](const char* name, const char* value) {
    auto h = ingest_headers();
    h[name] = value;
    return h;
  };
  const std::string gz = gzip_compress(body);
  const std::vector<Case> cases{
      {"no token", gz, headers_without("Authorization"), 401},
      {"wrong token", gz, headers_with("Authorization", "Bearer nope"), 401},
      {"read-style basic auth", gz, headers_with("Authorization", "Basic aW5nZXN0OnNlY3JldA=="), 401},
      {"wrong content type", gz, headers_with("Content-Type", "text/plain"), 415},
      {"unknown content encoding", gz, headers_with("Content-Encoding", "br"), 415},
      {"truncated gzip", gz.substr(0, gz.size() - 6), ingest_headers(), 415},
      {"not gzip at all", body, ingest_headers(), 415},
      {"gzip bomb (1 GiB of zeros)", gzip_bomb(1ull << 30), ingest_headers(), 413},
      {"body over the compressed limit", std::string((16 << 20) + 100, 'x'), ingest_headers(""), 413},
      {"empty batch", gzip_compress("\n\n"), ingest_headers(), 400},
      {"bad Idempotency-Key", gz, headers_with("Idempotency-Key", std::string(300, 'k').c_str()), 400},
  };
  for (const Case& c : cases) {
    const HttpResponse r = collector_->post(c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body.substr(0, 200);
    const json answer = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(!answer.is_discarded() && answer.contains("error")) << c.what << ": " << r.body.substr(0, 200);
  }
  EXPECT_EQ(stored_sessions(), 0);
  // Identity encoding is accepted.
  const HttpResponse ok = collector_->post(body, ingest_headers(""));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(stored_sessions(), 1);
  const std::string metrics = collector_->get("/metrics").body;
  EXPECT_NE(metrics.find("streamtally_collector_ingest_rejected_batches_total{status=\"401\"} 3"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("streamtally_collector_ingest_rejected_batches_total{status=\"413\"} 2"), std::string::npos);
}

TEST_F(BadInput, QueryParametersAreValidatedAndNamed) {
  struct Case {
    std::string query;
    const char* names;
  };
  const std::vector<Case> cases{
      {"/v1/events?metrics=bogus", "metrics"},
      {"/v1/events?metrics=sessions&dimensions=planet", "dimensions"},
      {"/v1/events?metrics=sessions&dimensions=tag.a%27b", "dimensions"},
      {"/v1/events", "metrics"},
      {"/v1/events?metrics=sessions&where=planet==mars", "where"},
      {"/v1/events?metrics=sessions&where=stream", "where"},
      {"/v1/events?metrics=sessions&from=yesterday", "from"},
      {"/v1/events?metrics=sessions&from=99999999999999999999", "from"},
      {"/v1/events?metrics=sessions&to=-5", "to"},
      {"/v1/events?metrics=sessions&from=2026-13-01", "from"},
      {"/v1/events?metrics=sessions&from=2026-11-02&to=2026-11-01", "from"},
      {"/v1/events?metrics=sessions&frm=1", "frm"},
      {"/v1/timeseries?metrics=ccu&bucket=7x", "bucket"},
      {"/v1/timeseries?metrics=ccu&bucket=1m&bucket_limit=3", "bucket_limit"},
      {"/v1/timeseries?metrics=ccu&bucket=1m&from=0&to=2026-01-01", "bucket"},
      {"/v1/sessions?group=planet", "group"},
      {"/v1/sessions?order=password", "order"},
      {"/v1/sessions?limit=0", "limit"},
      {"/v1/sessions?protocol=carrier-pigeon", "protocol"},
      {"/v1/sessions?min_duration=-1", "min_duration"},
      {"/v1/top?by=likes", "by"},
      {"/v1/top?of=planet", "of"},
      {"/v1/top?month=2026-13", "month"},
      {"/v1/usage/month-to-date?at=soon", "at"},
      {"/v1/export?format=pdf", "format"},
  };
  for (const Case& c : cases) {
    const HttpResponse r = collector_->get(c.query);
    EXPECT_EQ(r.status, 400) << c.query << " -> " << r.body;
    const json answer = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(answer.is_discarded()) << c.query;
    EXPECT_NE(answer.value("error", "").find(c.names), std::string::npos) << c.query << " -> " << r.body;
  }
  EXPECT_EQ(collector_->get("/v1/nothing").status, 404);
}

TEST_F(BadInput, ReportsTooLargeForMemoryAreRefused) {
  std::string body;
  for (int i = 0; i < 150; ++i) {
    json j = json::parse(good_line("user-session-" + std::to_string(i)));
    j["user_id"] = "user-" + std::to_string(i);
    body += j.dump() + "\n";
  }
  ASSERT_EQ(collector_->post(gzip_compress(body), ingest_headers()).status, 200);
  // 150 users x 41761 one-minute buckets > 5M points.
  const HttpResponse r =
      collector_->get("/v1/timeseries?metrics=ccu&dimensions=user_id&bucket=1m&from=2026-09-01&to=2026-09-30");
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
  EXPECT_NE(r.body.find("report too large"), std::string::npos) << r.body.substr(0, 200);
  // The same report over one day is fine.
  EXPECT_EQ(collector_->get("/v1/timeseries?metrics=ccu&dimensions=user_id&bucket=1m&from=2026-09-21&to=2026-09-22").status,
            200);
}

TEST(ReadTokens, EveryReadEndpointNeedsOneWhenConfigured) {
  TempDir dir;
  CollectorProcess collector(dir.file("t.db"), {"--read-token", "reader-1", "--read-token", "reader-2"});
  ASSERT_TRUE(collector.started()) << read_file(collector.log_path());
  const std::vector<std::string> endpoints{"/v1/events?metrics=sessions", "/v1/timeseries?metrics=ccu",
                                           "/v1/sessions", "/v1/top", "/v1/usage/month-to-date",
                                           "/v1/export?format=csv", "/metrics"};
  for (const auto& e : endpoints) {
    EXPECT_EQ(collector.get(e).status, 401) << e;
    EXPECT_EQ(collector.get(e, {{"Authorization", "Bearer reader-3"}}).status, 401) << e;
    EXPECT_EQ(collector.get(e, {{"Authorization", std::string("Bearer ") + kIngestToken}}).status, 401) << e;
    EXPECT_EQ(collector.get(e, {{"Authorization", "Bearer reader-2"}}).status, 200) << e;
  }
  EXPECT_EQ(collector.get("/healthz").status, 200);  // liveness stays open
  // The read token does not let anyone ingest.
  const HttpResponse r = collector.post(gzip_compress(good_line() + "\n"),
                                        {{"Content-Type", "application/x-ndjson"},
                                         {"Content-Encoding", "gzip"},
                                         {"Authorization", "Bearer reader-1"}});
  EXPECT_EQ(r.status, 401);
}

// A backlog the store has not applied is bounded: at max_inbox_records ingest answers
// 503 with Retry-After (the edges keep the batch in their spool), and takes batches
// again once the applier has caught up. Applying stalls here as on a full disk: a
// trigger refuses every new session row.
TEST(Backpressure, ABacklogAtItsBoundIsRefusedUntilApplied) {
  TempDir dir;
  const std::string db = dir.file("backlog.db"), config = dir.file("collector.yaml");
  std::ofstream(config) << "max_inbox_records: 50\n";
  CollectorProcess collector("sqlite:" + db, {"--config", config});
  ASSERT_TRUE(collector.started()) << read_file(collector.log_path());
  auto exec = [&](const char* sql) {
    sqlite3* raw = nullptr;
    const bool ok = sqlite3_open(db.c_str(), &raw) == SQLITE_OK && sqlite3_busy_timeout(raw, 10000) == SQLITE_OK &&
                    sqlite3_exec(raw, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    sqlite3_close(raw);
    return ok;
  };
  ASSERT_TRUE(exec("CREATE TRIGGER stall BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'stalled'); END"));
  auto batch = [](int first) {
    std::vector<std::string> lines;
    for (int i = first; i < first + 60; ++i) lines.push_back(good_line("s-" + std::to_string(i)));
    return lines;
  };

  EXPECT_EQ(collector.post_lines(batch(0), "k-0").status, 200);  // the backlog was empty
  const HttpResponse refused = collector.post_lines(batch(60), "k-60");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers.count("retry-after") ? refused.headers.at("retry-after") : "", "1");
  EXPECT_NE(refused.body.find("backlog of 60 records"), std::string::npos) << refused.body;

  // The cause goes away; the applier (retrying every second) catches up and the same
  // batch is taken: nothing was lost or counted twice.
  ASSERT_TRUE(exec("DROP TRIGGER stall"));
  HttpResponse retried;
  EXPECT_TRUE(wait_until([&] { return (retried = collector.post_lines(batch(60), "k-60")).status == 200; },
                         std::chrono::seconds(30)))
      << retried.status << " " << retried.body;
  EXPECT_EQ(json::parse(retried.body).at("accepted"), 60);
  const json events = collector.get_json("/v1/events?metrics=sessions&from=0&to=1790000120000");
  EXPECT_EQ(events.at("data").at(0).at("totals").at("sessions"), 120) << events.dump();
  // The ids the failed applies gave new sessions were given again: ids stay dense (the
  // store counts its sessions by the highest id).
  const std::string metrics = collector.get("/metrics").body;
  EXPECT_NE(metrics.find("\nstreamtally_collector_store_sessions 120\n"), std::string::npos) << metrics;
}

TEST(CollectorCommandLine, HelpConfigFileAndErrors) {
  const CommandResult help = run_command({collector_binary(), "--help"}, std::chrono::seconds(10));
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option :
       {"--listen", "--store", "--ingest-token", "--read-token", "--geoip", "--uap", "--scan-threads", "--config"})
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
  const CommandResult bad = run_command({collector_binary(), "--listen", "nonsense"}, std::chrono::seconds(10));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--listen"), std::string::npos) << bad.err;
  const CommandResult slices = run_command({collector_binary(), "--scan-threads", "-1"}, std::chrono::seconds(10));
  EXPECT_EQ(slices.exit_code, 2);
  EXPECT_NE(slices.err.find("scan_threads"), std::string::npos) << slices.err;
  TempDir bad_dir;
  std::ofstream(bad_dir.file("negative.yaml")) << "max_inbox_records: -1\n";
  const CommandResult backlog =
      run_command({collector_binary(), "--config", bad_dir.file("negative.yaml")}, std::chrono::seconds(10));
  EXPECT_EQ(backlog.exit_code, 2);
  EXPECT_NE(backlog.err.find("max_inbox_records"), std::string::npos) << backlog.err;
  const CommandResult clickhouse =
      run_command({collector_binary(), "--store", "clickhouse://127.0.0.1:1/db"}, std::chrono::seconds(30));
  EXPECT_NE(clickhouse.exit_code, 0);
  EXPECT_NE(clickhouse.err.find("clickhouse"), std::string::npos) << clickhouse.err;

  // A config file holds the same settings.
  TempDir dir;
  const int port = free_port();
  {
    std::ofstream config(dir.file("collector.yaml"));
    config << "listen: 127.0.0.1:" << port << "\nstore: sqlite:" << dir.file("cfg.db")
           << "\ningest_tokens: [from-file]\nread_tokens:\n  - file-reader\nscan_threads: 2\n";
  }
  ChildProcess::Options options;
  options.argv = {collector_binary(), "--config", dir.file("collector.yaml")};
  options.stderr_path = dir.file("cfg.log");
  ChildProcess child(options);
  ASSERT_TRUE(wait_until([&] { return http_get("http://127.0.0.1:" + std::to_string(port) + "/healthz").status == 200; },
                         std::chrono::seconds(60)))
      << read_file(dir.file("cfg.log"));
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(http_get(base + "/v1/top").status, 401);
  EXPECT_EQ(http_get(base + "/v1/top", {{"Authorization", "Bearer file-reader"}}).status, 200);
  const HttpResponse r = http_request("POST", base + "/v1/batches", good_line() + "\n",
                                      {{"Content-Type", "application/x-ndjson"}, {"Authorization", "Bearer from-file"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(child.stop(), 0);
}

}  // namespace
}  // namespace streamtally::test
