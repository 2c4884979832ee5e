// TestReceiver: a real HTTP(S) server on 127.0.0.1 that plays the collector's ingest
// endpoint (POST /v1/batches) for the uploader tests and benchmark.
//
// It decodes every request independently of the uploader (gzip, then every NDJSON
// line with streamtally::decode_record), keeps what arrived, and answers what the
// test scripted (status, Retry-After, delay) — 200 with the SPEC's body by default.
// It also checks the at-least-once invariants a collector relies on: which records
// were acknowledged (200) and whether a record was in two requests in flight at once.
// Thread-safety: all methods are thread-safe (the server runs its own threads).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "streamtally/record.hpp"

namespace httplib {
class Server;
}

namespace streamtally::test {

struct ScriptedResponse {
  int status = 200;
  std::string retry_after;                      // "" : no header
  std::chrono::milliseconds delay{0};           // hold the request before answering
  std::string body;                             // "" : a suitable JSON body
};

struct ReceivedRequest {
  std::string target;  // "/v1/batches", or the absolute URL when it came as a proxy
  std::string idempotency_key;
  std::string authorization;
  std::string content_type;
  std::string content_encoding;
  uint64_t wire_bytes = 0;  // Content-Length of the (compressed) body
  int remote_port = 0;      // tells connections apart (keep-alive)
  std::vector<SessionRecord> records;  // empty unless Options::keep_records
  std::size_t record_count = 0;        // records decoded
  std::string decode_error;  // "" when every line decoded
  int answered_status = 0;   // 0 until answered
  std::chrono::steady_clock::time_point arrived_at;
};

// (server_id, session_id, seq): what the collector deduplicates on.
using RecordKey = std::tuple<std::string, std::string, int64_t>;
RecordKey key_of(const SessionRecord& record);

class TestReceiver {
 public:
  struct Options {
    int port = 0;              // 0: any free port
    std::string cert_file;     // both set: HTTPS
    std::string key_file;
    std::size_t max_records_per_request = 0;  // > 0: larger requests get 413
    std::chrono::milliseconds hold{0};        // every request is held this long (overlap window)
    // false (benchmarks): every record is still decoded, but only counted — no copies
    // kept, no in-flight duplicate bookkeeping.
    bool keep_records = true;
  };

  explicit TestReceiver(Options options);
  TestReceiver() : TestReceiver(Options{}) {}
  ~TestReceiver();
  TestReceiver(const TestReceiver&) = delete;
  TestReceiver& operator=(const TestReceiver&) = delete;

  bool listening() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const;  // base URL, as an operator configures it

  // Responses for the next requests, in order; afterwards default_response.
  void script(std::vector<ScriptedResponse> responses);
  void set_default_response(ScriptedResponse response);
  // Ends the delays of requests being held now (so a test can finish quickly).
  void release_held();

  std::vector<ReceivedRequest> requests() const;
  std::size_t request_count() const;
  std::size_t in_flight() const;
  // Records of requests answered 200, with how many times each arrived that way.
  std::map<RecordKey, int> acknowledged() const;
  // Records that arrived while the same record was in another request in flight.
  std::size_t concurrent_duplicates() const;

 private:
  void handle(const std::string& body, const std::string& target, const std::map<std::string, std::string>& headers,
              int remote_port, int& status, std::string& response_body, std::string& retry_after);

  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable release_;
  uint64_t release_generation_ = 0;
  bool stopping_ = false;
  std::deque<ScriptedResponse> script_;
  ScriptedResponse default_response_;
  std::vector<ReceivedRequest> requests_;
  std::multiset<RecordKey> in_flight_records_;
  std::size_t in_flight_ = 0;
  std::size_t concurrent_duplicates_ = 0;
};

}  // namespace streamtally::test
