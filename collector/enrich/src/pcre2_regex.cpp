#include "pcre2_regex.hpp"

namespace streamtally::collector {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Result<Pcre2Regex> Pcre2Regex::compile(std::string_view pattern, bool caseless) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   caseless ? PCRE2_CASELESS : 0, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return Error{"regex '" + std::string(pattern) + "' at offset " + std::to_string(error_offset) + ": " +
                 pcre2_message(error_code)};
  }
  Pcre2Regex regex;
  regex.code_.reset(code, CodeFree{});
  // JIT is an optimisation: when it is unavailable (or fails) the interpreter runs the same
  // pattern, so a failure here is not an error.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &regex.capture_count_);
  return regex;
}

MatchScratch::MatchScratch(std::uint32_t max_captures) : data_(pcre2_match_data_create(max_captures + 1, nullptr)) {}

std::optional<RegexMatch> Pcre2Regex::search(std::string_view subject) const {
  return search(subject, MatchScratch(capture_count_));
}

std::optional<RegexMatch> Pcre2Regex::search(std::string_view subject, const MatchScratch& scratch) const {
  pcre2_match_data* data = scratch.get();
  if (data == nullptr || pcre2_get_ovector_count(data) < capture_count_ + 1) return std::nullopt;
  const auto* bytes = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = pcre2_match(code_.get(), bytes, subject.size(), 0, 0, data, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    // The JIT's default 32 KiB stack is too small for some patterns on long subjects;
    // the interpreter has no such limit (it uses the heap).
    rc = pcre2_match(code_.get(), bytes, subject.size(), 0, PCRE2_NO_JIT, data, nullptr);
  }
  if (rc <= 0) return std::nullopt;  // no match, or a resource limit: treat as no match

  RegexMatch match;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
  const std::size_t groups = std::size_t(capture_count_) + 1;
  match.groups_.resize(groups);
  for (std::size_t i = 0; i < groups && i < pcre2_get_ovector_count(data); ++i) {
    if (ovector[2 * i] == PCRE2_UNSET) continue;
    match.groups_[i] = subject.substr(ovector[2 * i], ovector[2 * i + 1] - ovector[2 * i]);
  }
  return match;
}

}  // namespace streamtally::collector
