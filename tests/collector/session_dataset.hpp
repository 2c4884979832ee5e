// A generated set of sessions with every update they send, and the answers the
// collector must give, computed here by plain loops over the raw sessions — never
// through the collector's code or SQL.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace streamtally::test {

struct RawUpdate {
  int64_t seq = 0;
  int64_t updated_at = 0;
  std::optional<int64_t> ended_at;  // on the closing update
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
  int64_t t() const { return ended_at ? *ended_at : updated_at; }
};

struct RawSession {
  std::string server_id, host, session_id, type, protocol, stream, client_ip, user_agent, referer;
  std::optional<std::string> user_id, token;
  std::map<std::string, std::string> tags;
  int64_t started_at = 0;
  std::vector<RawUpdate> updates;  // by seq, ascending
  // What enrichment must find (ground truth from the geo files and player docs).
  std::string country, device_type, os, browser, referer_domain;

  const RawUpdate& last() const { return updates.back(); }
  int64_t end() const { return std::max(started_at, last().t()); }
  std::string dimension(const std::string& name) const;
};

// NDJSON line of one update of a session (built with nlohmann::json here).
std::string record_line(const RawSession& s, std::size_t update_index);

// `count` sessions starting in [t0, t0 + span_ms), deterministic for a seed.
// Every started_at is distinct (so orderings by it have no ties).
std::vector<RawSession> generate_sessions(uint32_t seed, int count, int64_t t0, int64_t span_ms);

// Country of an IP from the installed tor-geoipdb files by linear scan.
std::string country_by_linear_scan(const std::string& ip);

// ---- expected answers --------------------------------------------------------

struct Where {
  std::string dimension;
  std::vector<std::string> values;
};

using Key = std::vector<std::string>;
// metric name -> value: integers exact (int64), viewtime in seconds (double).
using MetricValues = std::map<std::string, nlohmann::json>;

class Oracle {
 public:
  explicit Oracle(const std::vector<RawSession>& sessions) : sessions_(sessions) {}

  // [from, to): minute-aligned.
  std::map<Key, MetricValues> events(const std::vector<std::string>& dims, const std::vector<std::string>& metrics,
                                     const std::vector<Where>& where, int64_t from, int64_t to) const;
  // Per group: metric -> values per bucket.
  std::map<Key, std::map<std::string, std::vector<nlohmann::json>>> timeseries(const std::vector<std::string>& dims,
                                                                       const std::vector<std::string>& metrics,
                                                                       const std::vector<Where>& where,
                                                                       int64_t first_bucket, int64_t bucket_ms,
                                                                       int64_t count) const;

  // Sessions open at some instant of [from, to] (inclusive), filtered.
  std::vector<const RawSession*> open_sessions(int64_t from, int64_t to) const;

  // Values of one session restricted to [from, to) (minute-aligned).
  static int64_t bytes_in_range(const RawSession& s, bool out, int64_t from, int64_t to);
  static int64_t viewtime_ms_in_range(const RawSession& s, int64_t from, int64_t to);
  // Highest number of sessions open at an instant of [from, to).
  static int64_t max_open(const std::vector<const RawSession*>& sessions, int64_t from, int64_t to);

 private:
  bool matches(const RawSession& s, const std::vector<Where>& where) const;
  const std::vector<RawSession>& sessions_;
};

}  // namespace streamtally::test
