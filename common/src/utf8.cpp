#include "streamtally/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace streamtally {
namespace {

// Length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or 0.
std::size_t sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return (left >= 2 && (b(1) & 0xC0) == 0x80) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3) return 0;
    const uint8_t lo = c == 0xE0 ? 0xA0 : 0x80;
    const uint8_t hi = c == 0xED ? 0x9F : 0xBF;
    return (b(1) >= lo && b(1) <= hi && (b(2) & 0xC0) == 0x80) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4) return 0;
    const uint8_t lo = c == 0xF0 ? 0x90 : 0x80;
    const uint8_t hi = c == 0xF4 ? 0x8F : 0xBF;
    return (b(1) >= lo && b(1) <= hi && (b(2) & 0xC0) == 0x80 && (b(3) & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    // ASCII runs (most of a record) eight bytes at a time.
    if (s.size() - i >= 8) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const std::size_t n = sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s, std::size_t max_bytes) {
  std::string out;
  out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = sequence_length(s, i);
    const std::string_view piece = n ? s.substr(i, n) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;  // never split a character
    out.append(piece);
    i += n ? n : 1;
  }
  return out;
}

}  // namespace streamtally
