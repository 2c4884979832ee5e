// gzip (RFC 1952): the uploader compresses batches with libdeflate (about twice zlib's
// speed at the same level, see docs/DECISIONS.md); the collector inflates them with
// zlib's streaming inflate, which stops at a hard limit on the inflated size (gzip bombs)
// whatever the trailer claims.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "streamtally/result.hpp"

namespace streamtally {

// level: 1 (fastest) .. 12 (smallest), as libdeflate counts; 6 is zlib's default.
std::string gzip_compress(std::string_view data, int level = 6);

// Why an inflate failed, for callers that answer differently (the collector: 413 for a
// body that inflates beyond its limit, 415 for bad gzip).
enum class GzipFailure { Corrupt, Truncated, TooLarge };

// Fails on corrupt or truncated input, or when the output would exceed max_output; `why`,
// when given, says which.
Result<std::string> gzip_decompress(std::string_view data, std::size_t max_output, GzipFailure* why = nullptr);

}  // namespace streamtally
