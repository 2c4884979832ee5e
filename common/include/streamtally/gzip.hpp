// gzip (RFC 1952) with zlib: the uploader compresses batches, the collector inflates
// them with a hard limit on the inflated size (gzip bombs).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "streamtally/result.hpp"

namespace streamtally {

std::string gzip_compress(std::string_view data, int level = 6);

// Fails on corrupt or truncated input, or when the output would exceed max_output.
Result<std::string> gzip_decompress(std::string_view data, std::size_t max_output);

}  // namespace streamtally
