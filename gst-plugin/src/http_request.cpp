#include "http_request.hpp"

#include <algorithm>
#include <cctype>

namespace streamtally::gst {
namespace {

bool is_token_char(unsigned char c) {
  // RFC 9110 tchar
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_token_char(c); });
}

// Field values may hold visible characters, spaces, tabs and obs-text (>= 0x80).
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

ParseOutcome malformed(std::string why) {
  ParseOutcome out;
  out.status = ParseStatus::Malformed;
  out.error = std::move(why);
  return out;
}

// Splits the head into lines (without their CRLF / LF).
std::vector<std::string_view> split_lines(std::string_view head) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    std::size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    head.remove_prefix(nl + 1);
  }
  return lines;
}

// Finds the blank line ending the head; returns the head's length including it.
std::optional<std::size_t> head_length(std::string_view received) {
  std::size_t pos = 0;
  while (true) {
    std::size_t nl = received.find('\n', pos);
    if (nl == std::string_view::npos) return std::nullopt;
    std::size_t line_start = pos;
    std::size_t line_len = nl - line_start;
    if (line_len == 0 || (line_len == 1 && received[line_start] == '\r')) {
      if (line_start > 0) return nl + 1;  // blank line after at least the request line
    }
    pos = nl + 1;
  }
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;  // needs two hex digits
      int hi = hex_value(text[i + 1]);
      int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::query_arg(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (auto decoded_key = percent_decode(key, true); decoded_key && *decoded_key == name) {
      std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return percent_decode(value, true);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

ParseOutcome parse_http_request(std::string_view received, std::size_t max_head_bytes) {
  std::optional<std::size_t> length = head_length(received);
  if (!length) {
    ParseOutcome out;
    out.status = received.size() > max_head_bytes ? ParseStatus::TooLarge : ParseStatus::Incomplete;
    return out;
  }
  if (*length > max_head_bytes) {
    ParseOutcome out;
    out.status = ParseStatus::TooLarge;
    return out;
  }
  std::vector<std::string_view> lines = split_lines(received.substr(0, *length));
  // Clients may send empty lines before the request line (RFC 9112 2.2).
  while (!lines.empty() && lines.front().empty()) lines.erase(lines.begin());
  if (lines.empty()) return malformed("empty request");

  ParseOutcome out;
  HttpRequest& req = out.request;
  // Request line: METHOD SP target SP HTTP/1.x
  std::string_view line = lines.front();
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return malformed("bad request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return malformed("bad method");
  if (version == "HTTP/1.1") {
    req.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    req.version_minor = 0;
  } else {
    return malformed("unsupported HTTP version");
  }
  if (target.empty() || target.front() != '/') return malformed("request target is not a path");
  if (!std::all_of(target.begin(), target.end(),
                   [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; })) {
    return malformed("bad character in request target");
  }
  std::string_view raw_path = target.substr(0, target.find_first_of("?#"));
  std::size_t q = target.find('?');
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    req.query = std::string(query.substr(0, query.find('#')));
  }
  std::optional<std::string> path = percent_decode(raw_path, false);
  if (!path) return malformed("bad percent-encoding in path");
  req.method = std::string(method);
  req.path = std::move(*path);

  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string_view h = lines[i];
    if (h.empty()) break;
    if (h.front() == ' ' || h.front() == '\t') return malformed("obsolete header line folding");
    std::size_t colon = h.find(':');
    if (colon == std::string_view::npos) return malformed("header line without ':'");
    std::string_view name = h.substr(0, colon);
    if (!is_token(name)) return malformed("bad header name");
    std::string_view value = trim_ows(h.substr(colon + 1));
    if (!is_field_value(value)) return malformed("control character in header value");
    req.headers.emplace_back(lower(name), std::string(value));
  }
  if (req.version_minor == 1 && !req.header("host")) return malformed("HTTP/1.1 request without Host");
  out.status = ParseStatus::Complete;
  out.head_bytes = *length;
  return out;
}

}  // namespace streamtally::gst
