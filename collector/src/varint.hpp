// LEB128 varints (zigzag for signed values) for the SQLite store's compact binary
// forms: inbox rows (inbox_codec.hpp) and update chains (update_chain.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace streamtally::collector {

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void put_signed(std::string& out, int64_t v) {
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

// a - b and b + d in wrap-around arithmetic: deltas between any two int64 values
// (times, byte counters) encode and decode without overflow.
inline int64_t wrapping_difference(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
inline int64_t wrapping_sum(int64_t b, int64_t d) {
  return static_cast<int64_t>(static_cast<uint64_t>(b) + static_cast<uint64_t>(d));
}

// Reads varints from a buffer, remembering the first thing that did not fit: a damaged
// buffer is an error, never a crash or a read past its end.
class VarintReader {
 public:
  explicit VarintReader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return fail("ends inside a number");
      const auto byte = static_cast<unsigned char>(*p_++);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    return fail("a number is longer than 64 bits");
  }
  int64_t signed_varint() {
    const uint64_t v = varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  // The next n bytes (empty, and an error, when fewer are left).
  std::string_view bytes(uint64_t n) {
    if (n > remaining()) return fail("a string runs past the end"), std::string_view();
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }
  const char* error() const { return error_; }

 protected:
  uint64_t fail(const char* why) {
    if (!error_) error_ = why;
    p_ = end_;  // everything after the first damage is unreadable
    return 0;
  }

 private:
  const char* p_;
  const char* end_;
  const char* error_ = nullptr;
};

}  // namespace streamtally::collector
