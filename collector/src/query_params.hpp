// Parsing and validation of the query API's parameters. Every error names the
// parameter and says what is accepted; the caller answers 400 with it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "report_model.hpp"
#include "streamtally/result.hpp"

namespace streamtally::collector {

// The raw query string split into name -> values, each percent-decoded once.
// `where` is kept raw as well: its values are URL-encoded inside the parameter.
class QueryParams {
 public:
  static QueryParams parse(std::string_view raw_query);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string raw(const std::string& name) const;  // not decoded ("" when absent)
  // Rejects names outside `known` (a typo must not silently widen a report).
  Status only(std::initializer_list<std::string_view> known) const;

 private:
  std::multimap<std::string, std::string> values_;
  std::map<std::string, std::string> raw_;
};

std::string percent_decode(std::string_view s);

// ms since epoch, or ISO-8601 ("2026-11-21", "2026-11-21T10:00:00Z", "...+01:00",
// fractional seconds). Accepts 1970-01-01 .. 9999-12-31.
Result<int64_t> parse_time(std::string_view text, std::string_view parameter);

// from/to with SPEC's defaults (to = now, from = to - 32 days); from <= to.
struct TimeRange {
  int64_t from = 0, to = 0;
};
Result<TimeRange> parse_range(const QueryParams& params, int64_t now);

Result<std::vector<std::string>> parse_dimensions(const QueryParams& params, bool required);
Result<std::vector<Metric>> parse_metrics(const QueryParams& params);
// `where=dim==v1,v2;dim2==v3` (AND of ORs), values URL-encoded.
Result<std::vector<WhereClause>> parse_where(const QueryParams& params);
// `bucket=1m|5m|1h|1d` (any <n>m, <n>h, <n>d); "" -> 1 minute.
Result<int64_t> parse_bucket(std::string_view text);
Result<int64_t> parse_count(const QueryParams& params, const std::string& name, int64_t fallback, int64_t min,
                            int64_t max);

// Calendar helpers (UTC): start of the month holding t, and of the month `delta` away.
int64_t month_start(int64_t t);
int64_t add_months(int64_t month_start_ms, int delta);
Result<int64_t> parse_month(std::string_view yyyy_mm);  // "2026-11" -> its first ms
std::string format_month(int64_t month_start_ms);

}  // namespace streamtally::collector
