// Backoff: how long the uploader waits after a failed POST.
//
// Exponential with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): the n-th consecutive failure waits a uniformly random time in
// [0, min(cap, base * 2^n)], which spreads many edges that failed together (collector
// restart) instead of making them retry in lock-step. A server's Retry-After is a
// floor: we never come back earlier than asked, and never later than the cap.
// Not thread-safe: one per uploader thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace streamtally::upload {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, uint64_t seed);

  // Records one more consecutive failure and returns the delay before the next try.
  std::chrono::milliseconds next_delay(std::optional<std::chrono::milliseconds> retry_after = std::nullopt);
  void reset() { failures_ = 0; }
  unsigned failures() const { return failures_; }
  // The upper bound of the jitter window for the current failure count (for logs/tests).
  std::chrono::milliseconds window() const;

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  unsigned failures_ = 0;
  std::mt19937_64 rng_;
};

// Parses a Retry-After value: delay-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", RFC 9110 IMF-fixdate) relative to now_epoch_ms.
// A date in the past is zero. Unparseable: nullopt.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, int64_t now_epoch_ms);

}  // namespace streamtally::upload
