// Parser of the HTTP/1.x request a player sends to streamtallyhttpsink: request
// line, headers, path and query arguments. Pure C++ (no GLib), so it is tested on
// its own. It reads only the head; a streaming GET has no body.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace streamtally::gst {

struct HttpRequest {
  std::string method;
  std::string path;   // percent-decoded, starts with '/'
  std::string query;  // raw, without '?'
  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased

  // The first header of that (lower-case) name.
  std::optional<std::string> header(std::string_view lower_name) const;
  // A query argument, percent- and '+'-decoded; nullopt when absent.
  std::optional<std::string> query_arg(std::string_view name) const;
};

enum class ParseStatus {
  Incomplete,  // no blank line yet: read more
  Complete,
  Malformed,   // answer 400
  TooLarge,    // the head exceeds the limit: answer 431
};

struct ParseOutcome {
  ParseStatus status = ParseStatus::Incomplete;
  HttpRequest request;       // valid when Complete
  std::size_t head_bytes = 0;  // bytes of the head including the blank line (Complete)
  std::string error;         // why Malformed
};

// Parses the head at the start of `received`. Accepts CRLF or bare LF line ends,
// rejects obsolete line folding, control characters, requests without `Host` in
// HTTP/1.1, other versions than 1.0/1.1 and targets that are not origin-form.
ParseOutcome parse_http_request(std::string_view received, std::size_t max_head_bytes);

// Percent-decoding; nullopt on a bad escape or a decoded NUL. `plus_is_space` for
// query components.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

}  // namespace streamtally::gst
