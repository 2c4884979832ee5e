#include "streamtally/gzip.hpp"

#include <zlib.h>

#include <memory>

namespace streamtally {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // 15-bit window, gzip header and trailer

struct DeflateStream {
  z_stream z{};
  bool ok = false;
  explicit DeflateStream(int level) {
    ok = deflateInit2(&z, level, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~DeflateStream() {
    if (ok) deflateEnd(&z);
  }
};

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
  DeflateStream s(level);
  if (!s.ok) return {};
  std::string out;
  out.resize(deflateBound(&s.z, data.size()) + 32);
  s.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  s.z.avail_in = static_cast<uInt>(data.size());
  s.z.next_out = reinterpret_cast<Bytef*>(out.data());
  s.z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&s.z, Z_FINISH) != Z_STREAM_END) return {};
  out.resize(s.z.total_out);
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
