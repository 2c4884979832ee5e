// UTF-8 helpers for text that comes from clients (User-Agent, pageUrl, query args).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace streamtally {

bool is_valid_utf8(std::string_view);

// Replaces every ill-formed sequence with U+FFFD, then cuts to at most max_bytes
// without splitting a character.
std::string sanitize_utf8(std::string_view, std::size_t max_bytes);

}  // namespace streamtally
