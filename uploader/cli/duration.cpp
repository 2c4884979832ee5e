#include <charconv>
#include <cstdint>

#include "commands.hpp"

namespace streamtally::cli {

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [rest, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || rest == begin) return std::nullopt;
  const std::string unit(rest, end);
  uint64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit.empty() || unit == "s") scale = 1000;  // nginx: a bare number is seconds
  else if (unit == "m") scale = 60 * 1000;
  else if (unit == "h") scale = 3600 * 1000;
  else if (unit == "d") scale = 86400 * 1000;
  else return std::nullopt;
  if (value > static_cast<uint64_t>(INT64_MAX) / scale) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(value * scale));
}

}  // namespace streamtally::cli
