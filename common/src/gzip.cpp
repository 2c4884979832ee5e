#include "streamtally/gzip.hpp"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>

namespace streamtally {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // 15-bit window, gzip header and trailer

struct InflateStream {
  z_stream z{};
  bool ok = false;
  InflateStream() { ok = inflateInit2(&z, kGzipWindowBits) == Z_OK; }
  ~InflateStream() {
    if (ok) inflateEnd(&z);
  }
};

}  // namespace

std::string gzip_compress(std::string_view data, int level) {
  level = std::clamp(level, 1, 12);
  // A compressor holds its hash tables (hundreds of KiB): one per thread and level, kept.
  struct Free {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  thread_local std::array<std::unique_ptr<libdeflate_compressor, Free>, 13> compressors;
  auto& compressor = compressors[static_cast<std::size_t>(level)];
  if (!compressor) compressor.reset(libdeflate_alloc_compressor(level));
  if (!compressor) return {};
  std::string out;
  out.resize(libdeflate_gzip_compress_bound(compressor.get(), data.size()));
  const std::size_t n = libdeflate_gzip_compress(compressor.get(), data.data(), data.size(), out.data(), out.size());
  out.resize(n);  // 0 cannot happen with the bound; an empty result is the error
  return out;
}

namespace {

// zlib's streaming inflate: the reference for errors (it tells truncated input from corrupt).
Result<std::string> zlib_decompress(std::string_view data, std::size_t max_output, GzipFailure& why) {
  InflateStream s;
  why = GzipFailure::Corrupt;
  if (!s.ok) return Error{"zlib could not start"};
  std::string out;
  char chunk[64 * 1024];
  s.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  s.z.avail_in = static_cast<uInt>(data.size());
  for (;;) {
    s.z.next_out = reinterpret_cast<Bytef*>(chunk);
    s.z.avail_out = sizeof chunk;
    const int rc = inflate(&s.z, Z_NO_FLUSH);
    const std::size_t produced = sizeof chunk - s.z.avail_out;
    if (out.size() + produced > max_output) {
      why = GzipFailure::TooLarge;
      return Error{"decompressed body exceeds the limit"};
    }
    out.append(chunk, produced);
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are valid gzip: keep going if input remains.
      if (s.z.avail_in == 0) return out;
      if (inflateReset(&s.z) != Z_OK) return Error{"corrupt gzip data"};
      continue;
    }
    if (rc == Z_BUF_ERROR && s.z.avail_in == 0) {
      why = GzipFailure::Truncated;
      return Error{"truncated gzip data"};
    }
    if (rc != Z_OK) return Error{"corrupt gzip data"};
  }
}

}  // namespace

// libdeflate inflates about twice as fast, but into a buffer given up front: the last
// member's trailer says its size (usually the body is one member), and a buffer that is too
// small doubles, never beyond max_output — a gzip bomb costs at most twice the limit. Bad
// input goes to zlib, whose messages say what is wrong.
Result<std::string> gzip_decompress(std::string_view data, std::size_t max_output, GzipFailure* why) {
  GzipFailure ignored;
  GzipFailure& failure = why ? *why : ignored;
  struct Free {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> decompressor(libdeflate_alloc_decompressor());
  if (!decompressor) return zlib_decompress(data, max_output, failure);
  std::string out;
  std::size_t pos = 0;
  do {
    const std::string_view member = data.substr(pos);
    std::size_t room = 64 * 1024;
    if (member.size() >= 18) {
      // ISIZE, little-endian by RFC 1952. Only a hint: a trailer that lies costs a retry, and
      // it may not ask for more than 64 times the compressed size at first.
      const auto* tail = reinterpret_cast<const unsigned char*>(data.data() + data.size() - 4);
      const uint32_t trailer_size = tail[0] | tail[1] << 8 | tail[2] << 16 | uint32_t(tail[3]) << 24;
      room = std::max<std::size_t>(room, std::min<std::size_t>(trailer_size, member.size() * 64));
    }
    for (;;) {
      const std::size_t base = out.size();
      room = std::min(room, max_output - base);
      out.resize(base + room);
      std::size_t in_used = 0, out_used = 0;
      const libdeflate_result r = libdeflate_gzip_decompress_ex(decompressor.get(), member.data(), member.size(),
                                                                out.data() + base, room, &in_used, &out_used);
      if (r == LIBDEFLATE_SUCCESS) {
        out.resize(base + out_used);
        pos += in_used;
        break;
      }
      out.resize(base);
      if (r != LIBDEFLATE_INSUFFICIENT_SPACE) return zlib_decompress(data, max_output, failure);
      if (base + room >= max_output) {
        failure = GzipFailure::TooLarge;
        return Error{"decompressed body exceeds the limit"};
      }
      room *= 2;
    }
  } while (pos < data.size());
  return out;
}

}  // namespace streamtally
