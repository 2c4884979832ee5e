#include "collector_metrics.hpp"

#include <cstdio>

namespace streamtally::collector {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

void CollectorMetrics::Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i)
    if (seconds <= kBuckets[i]) ++counts[i];
  ++count;
  sum += seconds;
}

void CollectorMetrics::batch_stored(const IngestOutcome& o, double seconds) {
  std::lock_guard lock(mutex_);
  ++batches_;
  if (o.replayed) ++replays_;
  records_ += static_cast<uint64_t>(o.accepted);
  duplicates_ += static_cast<uint64_t>(o.duplicates);
  ingest_seconds_.observe(seconds);
}

void CollectorMetrics::batch_rejected(int status) {
  std::lock_guard lock(mutex_);
  ++rejects_[status];
}

void CollectorMetrics::request_served(std::string_view endpoint, int status, double seconds) {
  std::lock_guard lock(mutex_);
  auto it = request_seconds_.find(endpoint);
  if (it == request_seconds_.end()) it = request_seconds_.emplace(std::string(endpoint), Histogram{}).first;
  it->second.observe(seconds);
  ++requests_[{std::string(endpoint), status}];
}

std::string CollectorMetrics::render(const StoreStats& store, bool store_ok) const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto histogram = [&](const std::string& name, const std::string& labels, const Histogram& h) {
    const std::string sep = labels.empty() ? "" : ",";
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      out += name + "_bucket{" + labels + sep + "le=\"" + number(kBuckets[i]) + "\"} " + std::to_string(h.counts[i]) +
             "\n";
    out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += name + "_sum" + braces + " " + number(h.sum) + "\n";
    out += name + "_count" + braces + " " + std::to_string(h.count) + "\n";
  };

  family("streamtally_collector_ingest_batches_total", "counter", "Batches committed (replays included).");
  out += "streamtally_collector_ingest_batches_total " + std::to_string(batches_) + "\n";
  family("streamtally_collector_ingest_replayed_batches_total", "counter",
         "Batches whose Idempotency-Key was seen before (nothing stored).");
  out += "streamtally_collector_ingest_replayed_batches_total " + std::to_string(replays_) + "\n";
  family("streamtally_collector_ingest_records_total", "counter", "Records accepted (new seq of a session).");
  out += "streamtally_collector_ingest_records_total " + std::to_string(records_) + "\n";
  family("streamtally_collector_ingest_duplicates_total", "counter", "Records already stored (same session and seq).");
  out += "streamtally_collector_ingest_duplicates_total " + std::to_string(duplicates_) + "\n";
  family("streamtally_collector_ingest_rejected_batches_total", "counter", "Batches refused, by HTTP status.");
  for (const auto& [status, n] : rejects_)
    out += "streamtally_collector_ingest_rejected_batches_total{status=\"" + std::to_string(status) + "\"} " +
           std::to_string(n) + "\n";
  family("streamtally_collector_ingest_commit_seconds", "histogram", "Time per batch in the store: acknowledged (durable) when it ends.");
  histogram("streamtally_collector_ingest_commit_seconds", "", ingest_seconds_);
  family("streamtally_collector_http_requests_total", "counter", "HTTP requests by endpoint and status.");
  for (const auto& [key, n] : requests_)
    out += "streamtally_collector_http_requests_total{endpoint=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  family("streamtally_collector_request_duration_seconds", "histogram", "Request latency by endpoint.");
  for (const auto& [endpoint, h] : request_seconds_)
    histogram("streamtally_collector_request_duration_seconds", "endpoint=\"" + endpoint + "\"", h);
  family("streamtally_collector_store_up", "gauge", "1 when the store answered.");
  out += std::string("streamtally_collector_store_up ") + (store_ok ? "1" : "0") + "\n";
  family("streamtally_collector_store_sessions", "gauge", "Sessions stored.");
  out += "streamtally_collector_store_sessions " + std::to_string(store.sessions) + "\n";
  family("streamtally_collector_store_inbox_records", "gauge",
         "Records acknowledged but not yet applied to the tables reports read (SQLite store).");
  out += "streamtally_collector_store_inbox_records " + std::to_string(store.inbox_records) + "\n";
  family("streamtally_collector_store_size_bytes", "gauge", "Database files on disk.");
  out += "streamtally_collector_store_size_bytes " + std::to_string(store.size_bytes) + "\n";
  return out;
}

}  // namespace streamtally::collector
