#include "test_receiver.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string_view>

#include "streamtally/gzip.hpp"
#include "streamtally/record_codec.hpp"

namespace streamtally::test {
namespace {

constexpr std::size_t kMaxInflated = 256u << 20;
// Debian's cpp-httplib is built with zlib and would inflate gzip bodies itself; like the
// collector (http_server.cpp), the receiver moves the header aside before routing and
// inflates with libdeflate, so it costs what a collector costs.
constexpr const char* kDeferredEncodingHeader = "X-Test-Content-Encoding";

std::string header(const std::map<std::string, std::string>& headers, const std::string& name) {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

}  // namespace

RecordKey key_of(const SessionRecord& record) { return {record.server_id, record.session_id, record.seq}; }

TestReceiver::TestReceiver(Options options) : options_(std::move(options)) {
  if (!options_.cert_file.empty())
    server_ = std::make_unique<httplib::SSLServer>(options_.cert_file.c_str(), options_.key_file.c_str());
  else
    server_ = std::make_unique<httplib::Server>();
  if (!server_->is_valid()) return;
  // One connection per uploader for its whole life: the uploader keeps it alive.
  server_->set_keep_alive_max_count(1'000'000);
  server_->set_keep_alive_timeout(60);
  // Without TCP_NODELAY, httplib's separate header and body writes meet the client's
  // delayed ACK: ~40 ms per response on loopback.
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(kMaxInflated);
  server_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (req.method == "POST" && req.has_header("Content-Encoding")) {
      auto& mutable_req = const_cast<httplib::Request&>(req);  // routing() holds it mutable
      const std::string encoding = req.get_header_value("Content-Encoding");
      mutable_req.headers.erase("Content-Encoding");
      mutable_req.headers.emplace(kDeferredEncodingHeader, encoding);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Also the absolute form "http://host:port/v1/batches" that clients send to an HTTP
  // proxy, so the receiver can stand in for one.
  server_->Post(R"((https?://[^/]+)?/v1/batches)", [this](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> headers;
    for (const auto& [name, value] : req.headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers[lower] = value;
    }
    int status = 200;
    std::string body, retry_after;
    handle(req.body, req.path, headers, req.remote_port, status, body, retry_after);
    res.status = status;
    if (!retry_after.empty()) res.set_header("Retry-After", retry_after);
    res.set_content(body, "application/json");
  });
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port("127.0.0.1");
  } else if (server_->bind_to_port("127.0.0.1", options_.port)) {
    port_ = options_.port;
  }
  if (port_ <= 0) {
    port_ = 0;
    return;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

TestReceiver::~TestReceiver() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  release_.notify_all();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string TestReceiver::url() const {
  return std::string(options_.cert_file.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port_);
}

void TestReceiver::script(std::vector<ScriptedResponse> responses) {
  std::lock_guard lock(mutex_);
  script_.assign(responses.begin(), responses.end());
}

void TestReceiver::set_default_response(ScriptedResponse response) {
  std::lock_guard lock(mutex_);
  default_response_ = std::move(response);
}

void TestReceiver::release_held() {
  std::lock_guard lock(mutex_);
  ++release_generation_;
  release_.notify_all();
}

void TestReceiver::handle(const std::string& raw_body, const std::string& target,
                          const std::map<std::string, std::string>& headers, int remote_port, int& status,
                          std::string& response_body, std::string& retry_after) {
  ReceivedRequest request;
  request.target = target;
  request.arrived_at = std::chrono::steady_clock::now();
  request.idempotency_key = header(headers, "idempotency-key");
  request.authorization = header(headers, "authorization");
  request.content_type = header(headers, "content-type");
  request.content_encoding = header(headers, "x-test-content-encoding");
  request.wire_bytes = std::stoull(header(headers, "content-length").empty() ? "0" : header(headers, "content-length"));
  request.remote_port = remote_port;

  std::string inflated_text;
  std::string_view text = raw_body;
  if (request.content_encoding == "gzip") {
    auto inflated = gzip_decompress(text, kMaxInflated);
    if (!inflated.ok()) {
      request.decode_error = "gzip: " + inflated.error();
    } else {
      inflated_text = std::move(inflated).value();
      text = inflated_text;
    }
  }
  std::size_t line_number = 0;
  for (std::size_t begin = 0; request.decode_error.empty() && begin < text.size();) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    std::string_view line(text.data() + begin, end - begin);
    if (!line.empty()) {
      auto record = decode_record(line);
      if (!record.ok()) {
        request.decode_error = "line " + std::to_string(line_number) + ": " + record.error();
      } else {
        ++request.record_count;
        if (options_.keep_records) request.records.push_back(std::move(record).value());
      }
    }
    begin = end + 1;
  }

  ScriptedResponse response;
  std::size_t index;
  uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    if (!request.decode_error.empty()) {
      response.status = 400;
      response.body = nlohmann::json{{"error", request.decode_error}, {"line", line_number}}.dump();
    } else if (options_.max_records_per_request > 0 && request.record_count > options_.max_records_per_request) {
      response.status = 413;
      response.body = R"({"error":"batch too large"})";
    } else if (!script_.empty()) {
      response = script_.front();
      script_.pop_front();
    } else {
      response = default_response_;
    }
    for (const auto& record : request.records) {
      if (in_flight_records_.count(key_of(record))) ++concurrent_duplicates_;
      in_flight_records_.insert(key_of(record));
    }
    ++in_flight_;
    index = requests_.size();
    requests_.push_back(request);
    generation = release_generation_;
  }

  const auto hold = std::max(options_.hold, response.delay);
  if (hold.count() > 0) {
    std::unique_lock lock(mutex_);
    release_.wait_for(lock, hold, [&] { return stopping_ || release_generation_ != generation; });
  }

  std::lock_guard lock(mutex_);
  for (const auto& record : request.records) in_flight_records_.erase(in_flight_records_.find(key_of(record)));
  --in_flight_;
  requests_[index].answered_status = response.status;
  status = response.status;
  retry_after = response.retry_after;
  if (!response.body.empty()) {
    response_body = response.body;
  } else if (status == 200) {
    response_body = nlohmann::json{{"batch_id", request.idempotency_key},
                                    {"accepted", request.record_count},
                                    {"duplicates", 0}}
                         .dump();
  } else {
    response_body = nlohmann::json{{"error", "scripted status " + std::to_string(status)}}.dump();
  }
}

std::vector<ReceivedRequest> TestReceiver::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t TestReceiver::request_count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

std::size_t TestReceiver::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

std::map<RecordKey, int> TestReceiver::acknowledged() const {
  std::lock_guard lock(mutex_);
  std::map<RecordKey, int> out;
  for (const auto& request : requests_)
    if (request.answered_status == 200)
      for (const auto& record : request.records) ++out[key_of(record)];
  return out;
}

std::size_t TestReceiver::concurrent_duplicates() const {
  std::lock_guard lock(mutex_);
  return concurrent_duplicates_;
}

}  // namespace streamtally::test
