// A PCRE2 pattern compiled once (JIT when the platform supports it) and matched from any
// number of threads: the compiled code is read-only; match data is per call.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "streamtally/result.hpp"

namespace streamtally::collector {

// Capture groups of one match: group(0) is the whole match; a group that did not take
// part is std::nullopt.
class RegexMatch {
 public:
  std::size_t group_count() const { return groups_.size(); }  // including group 0
  std::optional<std::string_view> group(std::size_t i) const {
    return i < groups_.size() ? groups_[i] : std::nullopt;
  }

 private:
  friend class Pcre2Regex;
  std::vector<std::optional<std::string_view>> groups_;
};

// Reusable match buffer: one per thread and parse, so a run over a thousand patterns does
// not allocate a thousand times. Not shareable between threads.
class MatchScratch {
 public:
  explicit MatchScratch(std::uint32_t max_captures);
  pcre2_match_data* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
  };
  std::unique_ptr<pcre2_match_data, Free> data_;
};

class Pcre2Regex {
 public:
  // Byte-oriented (no PCRE2_UTF): user-agents may hold any bytes, and a pattern must not
  // reject a subject for being ill-formed UTF-8.
  static Result<Pcre2Regex> compile(std::string_view pattern, bool caseless = false);

  // First match in subject; groups view into subject.
  std::optional<RegexMatch> search(std::string_view subject) const;
  // Same, with a caller's buffer that holds at least capture_count() groups.
  std::optional<RegexMatch> search(std::string_view subject, const MatchScratch& scratch) const;
  bool matches(std::string_view subject) const { return search(subject).has_value(); }
  std::uint32_t capture_count() const { return capture_count_; }

 private:
  struct CodeFree {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };
  std::shared_ptr<pcre2_code> code_;  // shared: copies of a parser share one compiled program
  std::uint32_t capture_count_ = 0;
};

}  // namespace streamtally::collector
