// The collector's own counters, rendered as Prometheus text for GET /metrics:
// ingest batches / records / duplicates / rejects, ingest and query latencies
// (histograms per endpoint), store size. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "store.hpp"

namespace streamtally::collector {

class CollectorMetrics {
 public:
  void batch_stored(const IngestOutcome& outcome, double seconds);
  void batch_rejected(int status);
  void request_served(std::string_view endpoint, int status, double seconds);
  std::string render(const StoreStats& store, bool store_ok) const;

 private:
  static constexpr std::array<double, 12> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
    void observe(double seconds);
  };
  mutable std::mutex mutex_;
  uint64_t batches_ = 0, replays_ = 0, records_ = 0, duplicates_ = 0;
  std::map<int, uint64_t> rejects_;  // by HTTP status
  Histogram ingest_seconds_;
  std::map<std::string, Histogram, std::less<>> request_seconds_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
};

}  // namespace streamtally::collector
