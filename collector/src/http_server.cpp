#include "http_server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "batch_decoder.hpp"
#include "report_api.hpp"
#include "streamtally/clock.hpp"
#include "streamtally/log.hpp"
#include "streamtally/uuid.hpp"

#ifdef STREAMTALLY_HAVE_DASHBOARD
#include "streamtally/collector/dashboard.hpp"
#endif

namespace streamtally::collector {
namespace {

// cpp-httplib 0.11 inflates gzip request bodies itself, with no bound on the inflated
// size. Ingest moves the header aside before routing so the body arrives as sent and
// batch_decoder inflates it under max_decompressed_bytes.
constexpr const char* kDeferredEncodingHeader = "X-StreamTally-Content-Encoding";

bool equal_constant_time(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool bearer_matches(const httplib::Request& req, const std::vector<std::string>& tokens) {
  const std::string header = req.get_header_value("Authorization");
  static constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) return false;
  const std::string token = header.substr(kBearer.size());
  bool match = false;
  for (const auto& t : tokens) match = equal_constant_time(token, t) || match;  // no early exit
  return match;
}

void send(httplib::Response& res, const ApiResponse& api) {
  res.status = api.status;
  if (!api.content_disposition.empty()) res.set_header("Content-Disposition", api.content_disposition);
  res.set_content(api.body, api.content_type.c_str());
}

std::string query_of(const httplib::Request& req) {
  const auto q = req.target.find('?');
  return q == std::string::npos ? std::string() : req.target.substr(q + 1);
}

bool valid_idempotency_key(const std::string& key) {
  if (key.size() > 128) return false;
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

}  // namespace

CollectorServer::CollectorServer(CollectorConfig config, Store& store, std::function<void(IngestRecord&)> enrich)
    : config_(std::move(config)), store_(store), enrich_(std::move(enrich)), http_(std::make_unique<httplib::Server>()) {
  const auto threads = static_cast<std::size_t>(config_.threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(config_.max_body_bytes);
  http_->set_keep_alive_timeout(config_.keep_alive_seconds);
  http_->set_read_timeout(config_.read_timeout_seconds, 0);
  http_->set_write_timeout(config_.read_timeout_seconds, 0);
  http_->set_tcp_nodelay(true);
  // Debian's cpp-httplib 0.11 sets SO_REUSEPORT on the listening socket, so a second
  // collector given the same address would bind too and silently take part of the
  // traffic into its own store. SO_REUSEADDR alone still allows a quick restart.
  http_->set_socket_options([this](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket_ = sock;  // the last one offered is the one bound
  });
  install_routes();
}

CollectorServer::~CollectorServer() = default;

Status CollectorServer::bind() {
  if (!http_->bind_to_port(config_.host(), config_.port()))
    return Error{"cannot listen on " + config_.listen + " (address in use or not local?)"};
  // The library listens with a backlog of 5: edges that reconnect at once (a collector
  // restart, every nginx worker of a fleet) overflow it, and with SYN cookies some of
  // those connections are reset mid-request. A second listen() sets the backlog anew.
  if (::listen(listen_socket_, SOMAXCONN) != 0)
    return Error{"cannot listen on " + config_.listen + ": " + std::strerror(errno)};
  return Status::Ok();
}

void CollectorServer::run() { http_->listen_after_bind(); }

void CollectorServer::stop() { http_->stop(); }

void CollectorServer::install_routes() {
  httplib::Server& http = *http_;
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (req.method == "POST" && req.path == "/v1/batches" && req.has_header("Content-Encoding")) {
      // routing() holds a mutable Request; the handler type only shows it const.
      auto& mutable_req = const_cast<httplib::Request&>(req);
      const std::string encoding = req.get_header_value("Content-Encoding");
      mutable_req.headers.erase("Content-Encoding");
      mutable_req.headers.emplace(kDeferredEncodingHeader, encoding);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
    // The operator needs what failed; the client only that it did.
    std::string what = "unknown exception";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(LogLevel::Error, "collector: " + req.method + " " + req.path + " failed: " + what);
    send(res, json_error(500, "internal error"));
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send(res, json_error(404, "no such endpoint: " + req.path));
    else if (res.status == 413) send(res, json_error(413, "request body too large"));
    else send(res, json_error(res.status, "bad request"));
  });

  // Ingest.
  http.Post("/v1/batches", [this](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& read_body) {
    const auto started = std::chrono::steady_clock::now();
    auto finish = [&](const ApiResponse& api) {
      send(res, api);
      if (api.status != 200) metrics_.batch_rejected(api.status);
      if (api.status == 429 || api.status == 503) res.set_header("Retry-After", "1");
      metrics_.request_served(
          "batches", api.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
    // Read (or drain) the body first so the connection stays usable whatever we answer.
    std::string body;
    bool too_large = false;
    const bool complete = read_body([&](const char* data, size_t length) {
      if (body.size() + length > config_.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, length);
      return true;
    });
    if (too_large || res.status == 413)
      return finish(json_error(413, "request body exceeds " + std::to_string(config_.max_body_bytes) + " bytes"));
    if (!complete) return finish(json_error(400, "request body could not be read"));
    if (config_.ingest_tokens.empty() || !bearer_matches(req, config_.ingest_tokens))
      return finish(json_error(401, "Authorization: Bearer <ingest token> required"));
    const std::string content_type = req.get_header_value("Content-Type");
    if (content_type.rfind("application/x-ndjson", 0) != 0)
      return finish(json_error(415, "Content-Type must be application/x-ndjson, got \"" + content_type + "\""));
    IngestBatch batch;
    batch.idempotency_key = req.get_header_value("Idempotency-Key");
    if (!valid_idempotency_key(batch.idempotency_key))
      return finish(json_error(400, "Idempotency-Key: at most 128 printable ASCII characters"));
    // Before decoding: refusing a batch the store cannot take now should cost nothing.
    if (auto refusal = store_.ingest_refusal()) return finish(json_error(503, *refusal));
    BatchLimits limits{config_.max_decompressed_bytes, config_.max_records_per_batch};
    if (auto error = decode_batch(req.get_header_value(kDeferredEncodingHeader), body, limits, enrich_, batch)) {
      ApiResponse api = json_error(error->status, error->message);
      if (error->line) {
        auto j = nlohmann::json::parse(api.body);
        j["line"] = *error->line;
        api.body = j.dump();
      }
      return finish(api);
    }
    const auto commit_started = std::chrono::steady_clock::now();
    const std::string idempotency_key = batch.idempotency_key;
    auto outcome = store_.ingest(std::move(batch));
    if (!outcome) {
      log(LogLevel::Error, "collector: batch not stored: " + outcome.error());
      return finish(json_error(503, "the store could not commit the batch; retry later"));
    }
    metrics_.batch_stored(*outcome,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count());
    nlohmann::json answer{{"batch_id", idempotency_key.empty() ? make_uuid_v4() : idempotency_key},
                          {"accepted", outcome->accepted},
                          {"duplicates", outcome->duplicates}};
    if (outcome->replayed) answer["replayed"] = true;
    finish({200, answer.dump(), "application/json", ""});
  });
  http.Post("/v1/batches", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.batch_rejected(400);
    send(res, json_error(400, "the batch has no records (NDJSON, one record per line)"));
  });

  // Read API.
  auto read_endpoint = [this](const char* name, ApiResponse (ReportApi::*method)(std::string_view, int64_t) const) {
    return [this, name, method](const httplib::Request& req, httplib::Response& res) {
      const auto started = std::chrono::steady_clock::now();
      ApiResponse api;
      if (!config_.read_tokens.empty() && !bearer_matches(req, config_.read_tokens)) {
        api = json_error(401, "Authorization: Bearer <read token> required");
      } else {
        ReportApi reports(store_);
        api = (reports.*method)(query_of(req), now_ms());
      }
      send(res, api);
      if (api.status == 401) res.set_header("WWW-Authenticate", "Bearer");
      metrics_.request_served(name, api.status,
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
  };
  http.Get("/v1/events", read_endpoint("events", &ReportApi::events));
  http.Get("/v1/timeseries", read_endpoint("timeseries", &ReportApi::timeseries));
  http.Get("/v1/sessions", read_endpoint("sessions", &ReportApi::sessions));
  http.Get("/v1/top", read_endpoint("top", &ReportApi::top));
  http.Get("/v1/usage/month-to-date", read_endpoint("month_to_date", &ReportApi::month_to_date));
  http.Get("/v1/export", read_endpoint("export", &ReportApi::export_report));

  http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!config_.read_tokens.empty() && !bearer_matches(req, config_.read_tokens)) {
      res.set_header("WWW-Authenticate", "Bearer");
      return send(res, json_error(401, "Authorization: Bearer <read token> required"));
    }
    auto stats = store_.stats();
    res.set_content(metrics_.render(stats ? *stats : StoreStats{}, stats.ok()), "text/plain; version=0.0.4");
  });
  http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    auto stats = store_.stats();
    if (!stats) return send(res, json_error(503, "store: " + stats.error()));
    send(res, {200, nlohmann::json{{"status", "ok"}, {"sessions", stats->sessions}}.dump(), "application/json", ""});
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
#ifdef STREAMTALLY_HAVE_DASHBOARD
    const std::string_view html = streamtally::collector::dashboard_html();
    res.set_content(std::string(html), "text/html; charset=utf-8");
#else
    send(res, json_error(404, "the dashboard is not part of this build"));
#endif
  });
}

}  // namespace streamtally::collector
