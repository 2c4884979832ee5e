#include "batch_sender.hpp"

#include <cstdio>
#include <string_view>
#include <vector>

#include "backoff.hpp"
#include "streamtally/clock.hpp"
#include "streamtally/gzip.hpp"

namespace streamtally::upload {
namespace {

// zlib level 1: NDJSON records repeat their keys, so level 1 already compresses
// typical records ~6-8x, at several times the speed of the default level 6 (see
// bench/upload and docs/DECISIONS.md).
constexpr int kGzipLevel = 1;

std::string describe(const HttpResponse& response) {
  std::string body = response.body.substr(0, 300);
  for (char& c : body)
    if (c == '\n' || c == '\r') c = ' ';
  return "HTTP " + std::to_string(response.status) + (body.empty() ? "" : ": " + body);
}

std::optional<std::chrono::milliseconds> retry_after_of(const HttpResponse& response) {
  if (response.retry_after.empty()) return std::nullopt;
  return parse_retry_after(response.retry_after, now_ms());
}

uint64_t fnv1a(std::string_view data, uint64_t hash) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

std::string batches_url_for(const std::string& collector_url) {
  std::string url = collector_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url + "/v1/batches";
}

std::string ndjson_body(std::span<const std::string_view> lines) {
  std::size_t size = 0;
  for (const auto& line : lines) size += line.size() + 1;
  std::string body;
  body.reserve(size);
  for (const auto& line : lines) {
    body += line;
    body += '\n';
  }
  return body;
}

std::string derive_split_key(const std::string& key, int part) {
  const std::string name = key + "/part" + std::to_string(part);
  uint64_t hi = fnv1a(name, 14695981039346656037ull);
  uint64_t lo = fnv1a(name, hi ^ 0x9e3779b97f4a7c15ull);
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000008000ull;  // version 8 (custom)
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // RFC variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

BatchSender::BatchSender(HttpClient& client, std::string collector_url, std::string token,
                         WireCounters& counters)
    : client_(client),
      batches_url_(batches_url_for(collector_url)),
      authorization_(token.empty() ? "" : "Authorization: Bearer " + token),
      counters_(counters) {}

std::string BatchSender::compress(std::string_view ndjson) { return gzip_compress(ndjson, kGzipLevel); }

void BatchSender::start_post(const std::string& key, std::string body, std::chrono::milliseconds request_timeout) {
  std::vector<std::string> headers = {"Content-Type: application/x-ndjson", "Content-Encoding: gzip",
                                      "Idempotency-Key: " + key};
  if (!authorization_.empty()) headers.push_back(authorization_);
  counters_.posts.fetch_add(1, std::memory_order_relaxed);
  counters_.body_bytes.fetch_add(body.size(), std::memory_order_relaxed);
  client_.begin_post(batches_url_, headers, std::move(body), request_timeout);
}

DeliveryResult BatchSender::verdict_of(const HttpResponse& response, std::size_t records, bool& too_large) {
  too_large = false;
  DeliveryResult result;
  result.status = response.status;
  if (response.transport_error != TransportError::None) {
    result.verdict =
        response.transport_error == TransportError::Aborted ? Verdict::Aborted : Verdict::RetryLater;
    result.detail = response.error;
    return result;
  }
  const long status = response.status;
  result.detail = describe(response);
  if (status >= 200 && status < 300) {
    counters_.records_delivered.fetch_add(records, std::memory_order_relaxed);
    result.verdict = Verdict::Delivered;
  } else if (status == 400) {
    result.verdict = Verdict::Rejected;
  } else if (status == 401 || status == 403) {
    result.verdict = Verdict::Unauthorized;
    result.retry_after = retry_after_of(response);
  } else if (status == 413) {
    too_large = true;
    result.verdict = Verdict::RetryLater;
  } else {
    // 429 and 5xx by the SPEC; 404, 415, 3xx and anything unexpected are a
    // misconfiguration or a collector problem an operator fixes: retrying slowly is
    // safe, dropping would lose data.
    result.verdict = Verdict::RetryLater;
    result.retry_after = retry_after_of(response);
  }
  return result;
}

PendingDelivery BatchSender::begin(const std::string& idempotency_key, std::span<const std::string_view> lines,
                                   std::chrono::milliseconds request_timeout, std::string body) {
  if (body.empty()) body = compress(ndjson_body(lines));
  start_post(idempotency_key, std::move(body), request_timeout);
  return PendingDelivery{idempotency_key, lines, request_timeout};
}

DeliveryResult BatchSender::finish(const PendingDelivery& delivery) {
  bool too_large = false;
  DeliveryResult result = verdict_of(client_.finish_post(), delivery.lines.size(), too_large);
  if (!too_large) return result;
  if (delivery.lines.size() <= 1) {
    result.verdict = Verdict::Rejected;
    result.detail = "a single record is larger than the collector accepts (" + result.detail + ")";
    return result;
  }
  // Halves go one after the other; the first failure decides for the whole batch,
  // which stays claimed as one unit in the spool. A half that was delivered and is
  // sent again later carries the same derived key, and the collector keeps the
  // highest seq per session anyway.
  const std::size_t half = delivery.lines.size() / 2;
  DeliveryResult first =
      deliver(derive_split_key(delivery.key, 0), delivery.lines.first(half), delivery.request_timeout);
  if (first.verdict != Verdict::Delivered) return first;
  return deliver(derive_split_key(delivery.key, 1), delivery.lines.subspan(half), delivery.request_timeout);
}

DeliveryResult BatchSender::deliver(const std::string& idempotency_key, std::span<const std::string_view> lines,
                                    std::chrono::milliseconds request_timeout) {
  return finish(begin(idempotency_key, lines, request_timeout));
}

}  // namespace streamtally::upload
