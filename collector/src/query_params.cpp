#include "query_params.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <chrono>

#include "attribution.hpp"

namespace streamtally::collector {
namespace {

constexpr int64_t kMaxTimeMs = 253402300799999;  // 9999-12-31T23:59:59.999Z

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = s.find(sep, pos);
    parts.push_back(s.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return parts;
}

bool parse_int(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days(year(static_cast<int>(y)) / month(m) / day(d)).time_since_epoch().count();
}

}  // namespace

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

QueryParams QueryParams::parse(std::string_view raw_query) {
  QueryParams params;
  if (raw_query.empty()) return params;
  for (std::string_view pair : split(raw_query, '&')) {
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const std::string name = percent_decode(pair.substr(0, eq));
    const std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    params.values_.emplace(name, percent_decode(raw));
    params.raw_[name] = std::string(raw);
  }
  return params;
}

std::string QueryParams::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string QueryParams::raw(const std::string& name) const {
  auto it = raw_.find(name);
  return it == raw_.end() ? std::string() : it->second;
}

Status QueryParams::only(std::initializer_list<std::string_view> known) const {
  for (const auto& [name, value] : values_) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || k == name;
    if (!ok) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return Error{"unknown parameter \"" + name + "\"; accepted: " + list};
    }
  }
  return Status::Ok();
}

Result<int64_t> parse_time(std::string_view text, std::string_view parameter) {
  const std::string what = std::string(parameter) + ": expected ms since the epoch or ISO-8601 "
                           "(2026-11-21 or 2026-11-21T10:00:00Z) between 1970 and 9999, got \"" +
                           std::string(text.substr(0, 64)) + "\"";
  int64_t value = 0;
  if (all_digits(text)) {
    if (text.size() > 15 || !parse_int(text, value) || value > kMaxTimeMs) return Error{what};
    return value;
  }
  // YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]
  auto number = [&](std::size_t pos, std::size_t len, int64_t& out) {
    return pos + len <= text.size() && all_digits(text.substr(pos, len)) && parse_int(text.substr(pos, len), out);
  };
  int64_t y, mo, d, h = 0, mi = 0, s = 0, ms = 0;
  if (!number(0, 4, y) || text.size() < 10 || text[4] != '-' || !number(5, 2, mo) || text[7] != '-' ||
      !number(8, 2, d))
    return Error{what};
  std::size_t pos = 10;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == ' ')) {
    if (!number(pos + 1, 2, h) || pos + 3 >= text.size() || text[pos + 3] != ':' || !number(pos + 4, 2, mi))
      return Error{what};
    pos += 6;
    if (pos < text.size() && text[pos] == ':') {
      if (!number(pos + 1, 2, s)) return Error{what};
      pos += 3;
      if (pos < text.size() && text[pos] == '.') {
        std::size_t digits = 0;
        ++pos;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
          if (digits < 3) ms = ms * 10 + (text[pos] - '0');
          ++digits, ++pos;
        }
        if (digits == 0) return Error{what};
        for (; digits < 3; ++digits) ms *= 10;
      }
    }
  }
  int64_t offset_min = 0;
  if (pos < text.size()) {
    if (text[pos] == 'Z' && pos + 1 == text.size()) {
      ++pos;
    } else if ((text[pos] == '+' || text[pos] == '-') && pos + 6 == text.size() && text[pos + 3] == ':') {
      int64_t oh, om;
      if (!number(pos + 1, 2, oh) || !number(pos + 4, 2, om) || oh > 23 || om > 59) return Error{what};
      offset_min = (text[pos] == '+' ? 1 : -1) * (oh * 60 + om);
      pos = text.size();
    } else {
      return Error{what};
    }
  }
  using namespace std::chrono;
  const year_month_day ymd{year(static_cast<int>(y)), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!ymd.ok() || y < 1970 || h > 23 || mi > 59 || s > 59) return Error{what};
  value = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * kDayMs + h * kHourMs +
          mi * kMinuteMs + s * 1000 + ms - offset_min * kMinuteMs;
  if (value < 0 || value > kMaxTimeMs) return Error{what};
  return value;
}

Result<TimeRange> parse_range(const QueryParams& params, int64_t now) {
  TimeRange range{now - 32 * kDayMs, now};
  if (params.has("to")) {
    auto to = parse_time(params.get("to"), "to");
    if (!to) return Error{to.error()};
    range.to = *to;
    if (!params.has("from")) range.from = range.to - 32 * kDayMs;
  }
  if (params.has("from")) {
    auto from = parse_time(params.get("from"), "from");
    if (!from) return Error{from.error()};
    range.from = *from;
  }
  range.from = std::max<int64_t>(range.from, 0);
  if (range.from > range.to) return Error{"from: must not be after to"};
  return range;
}

Result<std::vector<std::string>> parse_dimensions(const QueryParams& params, bool required) {
  std::vector<std::string> dims;
  const std::string text = params.get("dimensions");
  if (text.empty()) {
    if (required) return Error{"dimensions: required, a comma-separated list of " + std::string(kDimensionNames)};
    return dims;
  }
  for (std::string_view d : split(text, ',')) {
    if (!is_dimension(d))
      return Error{"dimensions: unknown dimension \"" + std::string(d.substr(0, 64)) + "\"; accepted: " +
                   std::string(kDimensionNames)};
    if (std::find(dims.begin(), dims.end(), d) != dims.end())
      return Error{"dimensions: \"" + std::string(d) + "\" is listed twice"};
    dims.emplace_back(d);
  }
  if (dims.size() > 8) return Error{"dimensions: at most 8"};
  return dims;
}

Result<std::vector<Metric>> parse_metrics(const QueryParams& params) {
  const std::string text = params.get("metrics");
  if (text.empty()) return Error{"metrics: required, a comma-separated list of " + std::string(kMetricNames)};
  std::vector<Metric> metrics;
  for (std::string_view m : split(text, ',')) {
    auto metric = parse_metric(m);
    if (!metric)
      return Error{"metrics: unknown metric \"" + std::string(m.substr(0, 64)) + "\"; accepted: " +
                   std::string(kMetricNames)};
    if (std::find(metrics.begin(), metrics.end(), *metric) != metrics.end())
      return Error{"metrics: \"" + std::string(m) + "\" is listed twice"};
    metrics.push_back(*metric);
  }
  return metrics;
}

Result<std::vector<WhereClause>> parse_where(const QueryParams& params) {
  std::vector<WhereClause> where;
  // Split the raw text so that encoded separators (%2C, %3B) stay inside values.
  const std::string raw = params.raw("where");
  if (raw.empty()) return where;
  for (std::string_view part : split(raw, ';')) {
    if (part.empty()) continue;
    const auto eq = part.find("==");
    if (eq == std::string_view::npos)
      return Error{"where: expected dim==v1,v2;dim2==v3, got \"" + percent_decode(part.substr(0, 64)) + "\""};
    WhereClause clause{percent_decode(part.substr(0, eq)), {}};
    if (!is_dimension(clause.dimension))
      return Error{"where: unknown dimension \"" + clause.dimension.substr(0, 64) + "\"; accepted: " +
                   std::string(kDimensionNames)};
    for (std::string_view v : split(part.substr(eq + 2), ',')) clause.values.push_back(percent_decode(v));
    if (clause.values.size() > 1000) return Error{"where: at most 1000 values per dimension"};
    where.push_back(std::move(clause));
  }
  return where;
}

Result<int64_t> parse_bucket(std::string_view text) {
  if (text.empty()) return kMinuteMs;
  const std::string what =
      "bucket: expected <n>m, <n>h or <n>d (1m, 5m, 1h, 1d ...), got \"" + std::string(text.substr(0, 32)) + "\"";
  int64_t n = 0;
  if (text.size() < 2 || !parse_int(text.substr(0, text.size() - 1), n) || n <= 0 || n > 100000) return Error{what};
  switch (text.back()) {
    case 'm': return n * kMinuteMs;
    case 'h': return n * kHourMs;
    case 'd': return n * kDayMs;
    default: return Error{what};
  }
}

Result<int64_t> parse_count(const QueryParams& params, const std::string& name, int64_t fallback, int64_t min,
                            int64_t max) {
  if (!params.has(name)) return fallback;
  int64_t value = 0;
  const std::string text = params.get(name);
  if (!parse_int(text, value) || value < min || value > max)
    return Error{name + ": expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", got \"" + text.substr(0, 32) + "\""};
  return value;
}

int64_t month_start(int64_t t) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days(days(floor_to(t, kDayMs) / kDayMs))};
  return sys_days(ymd.year() / ymd.month() / 1).time_since_epoch().count() * kDayMs;
}

int64_t add_months(int64_t start, int delta) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days(days(start / kDayMs))};
  const year_month ym = ymd.year() / ymd.month() + months(delta);
  return sys_days(ym / 1).time_since_epoch().count() * kDayMs;
}

Result<int64_t> parse_month(std::string_view text) {
  int64_t y = 0, m = 0;
  if (text.size() != 7 || text[4] != '-' || !parse_int(text.substr(0, 4), y) || !parse_int(text.substr(5, 2), m) ||
      m < 1 || m > 12 || y < 1970)
    return Error{"month: expected YYYY-MM, got \"" + std::string(text.substr(0, 32)) + "\""};
  return days_from_civil(y, static_cast<unsigned>(m), 1) * kDayMs;
}

std::string format_month(int64_t start) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days(days(start / kDayMs))};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()));
  return buf;
}

}  // namespace streamtally::collector
