// BatchSender: turns one claimed batch into POST <collector>/v1/batches requests and
// classifies what the collector answered (SPEC.md, "Wire protocol").
//
// Body: the NDJSON lines joined by '\n', gzip'ed. Headers: Content-Type
// application/x-ndjson, Content-Encoding gzip, Authorization: Bearer <token> (when
// set), Idempotency-Key: <batch id> — the same bytes on every retry of that batch.
// A 413 splits the batch in halves, each sent with a key derived deterministically
// from the batch id (so a retried half carries the same key again), recursively down
// to one record. The sender never touches the spool: the uploader acks, releases or
// dead-letters according to the verdict.
// Not thread-safe: one per uploader thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http_client.hpp"

namespace streamtally::upload {

enum class Verdict {
  Delivered,     // 2xx for every part: ack the batch
  Rejected,      // 400 (or a single record still too large): dead-letter the batch
  Unauthorized,  // 401/403: the token is wrong; back off, an operator must act
  RetryLater,    // 429, 5xx, timeouts, refused connections, other statuses: back off
  Aborted,       // stop() cut the request short: release, nothing to count
};

struct DeliveryResult {
  Verdict verdict = Verdict::RetryLater;
  long status = 0;  // HTTP status of the deciding response (0: none)
  std::optional<std::chrono::milliseconds> retry_after;
  std::string detail;  // for logs and the dead-letter reason
};

// Counters shared with Uploader::counters() readers on other threads.
struct WireCounters {
  std::atomic<uint64_t> posts{0};             // HTTP requests attempted
  std::atomic<uint64_t> records_delivered{0}; // records in requests answered 2xx
  std::atomic<uint64_t> body_bytes{0};        // gzip'ed request bodies sent
};

// One batch on its way: begin() starts its POST, finish() waits for the verdict. The
// uploader claims and compresses its next batch in between.
struct PendingDelivery {
  std::string key;
  std::span<const std::string_view> lines;  // the caller keeps them alive until finish()
  std::chrono::milliseconds request_timeout{0};
};

class BatchSender {
 public:
  BatchSender(HttpClient& client, std::string collector_url, std::string token, WireCounters& counters);

  DeliveryResult deliver(const std::string& idempotency_key, std::span<const std::string_view> lines,
                         std::chrono::milliseconds request_timeout = std::chrono::milliseconds::zero());

  // deliver() in two steps. A 413 splits the batch inside finish(), synchronously.
  // `body`: the lines as compress() made them ahead of time; empty: compressed now.
  PendingDelivery begin(const std::string& idempotency_key, std::span<const std::string_view> lines,
                        std::chrono::milliseconds request_timeout = std::chrono::milliseconds::zero(),
                        std::string body = {});
  DeliveryResult finish(const PendingDelivery& delivery);

  // The request body: NDJSON (each line followed by '\n', see ndjson_body()), gzip'ed.
  static std::string compress(std::string_view ndjson);
  const std::string& batches_url() const { return batches_url_; }

 private:
  void start_post(const std::string& key, std::string body, std::chrono::milliseconds request_timeout);
  DeliveryResult verdict_of(const HttpResponse& response, std::size_t records, bool& too_large);

  HttpClient& client_;
  std::string batches_url_;
  std::string authorization_;
  WireCounters& counters_;
};

// "<base>/v1/batches" without a doubled slash ("http://c:8088/" works too).
std::string batches_url_for(const std::string& collector_url);

// The NDJSON body of a batch (each line followed by '\n'), before compression.
std::string ndjson_body(std::span<const std::string_view> lines);

// A UUID-shaped key for part `part` (0 or 1) of a batch split after a 413,
// the same for the same (key, part) on every run (RFC 9562 version 8 layout).
std::string derive_split_key(const std::string& key, int part);

}  // namespace streamtally::upload
