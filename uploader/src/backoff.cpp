#include "backoff.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <string>

namespace streamtally::upload {

Backoff::Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, uint64_t seed)
    : base_(std::max(base, std::chrono::milliseconds(1))), cap_(std::max(cap, base_)), rng_(seed) {}

std::chrono::milliseconds Backoff::window() const {
  // base * 2^(failures-1), saturating long before 64-bit overflow.
  const unsigned shift = failures_ == 0 ? 0 : std::min(failures_ - 1, 40u);
  const long double window = static_cast<long double>(base_.count()) * static_cast<long double>(1ull << shift);
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(window, static_cast<long double>(cap_.count()))));
}

std::chrono::milliseconds Backoff::next_delay(std::optional<std::chrono::milliseconds> retry_after) {
  ++failures_;
  std::uniform_int_distribution<int64_t> jitter(0, window().count());
  std::chrono::milliseconds delay(jitter(rng_));
  if (retry_after) delay = std::max(delay, std::min(*retry_after, cap_));
  return delay;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"): RFC 9110 says senders MUST use
// it; the obsolete formats are not worth their parser here.
std::optional<int64_t> parse_imf_fixdate(std::string_view s) {
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char weekday[4] = {}, month[4] = {}, zone[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0, consumed = 0;
  const std::string text(s);
  if (std::sscanf(text.c_str(), "%3s %d %3s %d %d:%d:%d %3s%n", weekday, &day, month, &year, &hour, &minute,
                  &second, zone, &consumed) != 8 ||
      static_cast<std::size_t>(consumed) != text.size() || std::string_view(zone) != "GMT")
    return std::nullopt;
  const auto* it = std::find_if(kMonths.begin(), kMonths.end(),
                                [&](const char* m) { return std::string_view(m) == month; });
  if (it == kMonths.end() || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || year < 1970)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = static_cast<int>(it - kMonths.begin());
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return static_cast<int64_t>(t) * 1000;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, int64_t now_epoch_ms) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return std::chrono::milliseconds(INT64_MAX / 2);  // "forever"
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return std::chrono::milliseconds(static_cast<int64_t>(std::min<uint64_t>(seconds, INT64_MAX / 2000) * 1000));
  }
  // sscanf's %3s stops at "Sun" and the comma would then fail the day's %d: drop the
  // comma after the weekday first.
  std::string normalized(value);
  if (auto comma = normalized.find(','); comma != std::string::npos && comma <= 3) normalized.erase(comma, 1);
  auto at = parse_imf_fixdate(normalized);
  if (!at) return std::nullopt;
  return std::chrono::milliseconds(std::max<int64_t>(0, *at - now_epoch_ms));
}

}  // namespace streamtally::upload
