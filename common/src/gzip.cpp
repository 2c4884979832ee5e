#include "streamtally/gzip.hpp"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <array>
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

Result<std::string> gzip_decompress(std::string_view data, std::size_t max_output) {
  InflateStream s;
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
    if (out.size() + produced > max_output) return Error{"decompressed body exceeds the limit"};
    out.append(chunk, produced);
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are valid gzip: keep going if input remains.
      if (s.z.avail_in == 0) return out;
      if (inflateReset(&s.z) != Z_OK) return Error{"corrupt gzip data"};
      continue;
    }
    if (rc == Z_BUF_ERROR && s.z.avail_in == 0) return Error{"truncated gzip data"};
    if (rc != Z_OK) return Error{"corrupt gzip data"};
  }
}

}  // namespace streamtally
