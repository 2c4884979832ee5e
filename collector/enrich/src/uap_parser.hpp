// uap-core's regexes.yaml (github.com/ua-parser/uap-core) as a parser: user agent, OS and
// device, each the first matching regex of its list, with the replacement rules of uap-core's
// specification ($1…$9 templates, *_replacement keys, regex_flag 'i'). Compiled once with
// PCRE2 (JIT); parse() is const and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pcre2_regex.hpp"

namespace streamtally::collector {

// "Other" is uap-core's own word for "no rule matched"; kept as is here so the parser
// matches uap-core's test suites. The enricher turns it into "unknown".
struct UserAgentParts {
  struct Agent {
    std::string family = "Other";
    std::optional<std::string> major, minor, patch;
  } agent;
  struct Os {
    std::string family = "Other";
    std::optional<std::string> major, minor, patch, patch_minor;
  } os;
  struct Device {
    std::string family = "Other";
    std::optional<std::string> brand, model;
  } device;
};

class UapParser {
 public:
  static Result<UapParser> load(const std::string& regexes_yaml_path);

  UserAgentParts parse(std::string_view user_agent) const;
  UserAgentParts::Agent parse_agent(std::string_view user_agent) const;
  UserAgentParts::Os parse_os(std::string_view user_agent) const;
  UserAgentParts::Device parse_device(std::string_view user_agent) const;

  std::size_t rule_count() const { return agents_.size() + oses_.size() + devices_.size(); }

 private:
  // One regexes.yaml entry: the regex and its replacement templates (absent = use the group).
  struct Rule {
    Pcre2Regex regex;
    std::vector<std::optional<std::string>> replacements;
    std::string literal;  // every match contains it (lower case when caseless); "" = unknown
    bool caseless = false;
  };
  std::vector<Rule> agents_;   // family, v1, v2, v3, v4
  std::vector<Rule> oses_;     // os, os_v1, os_v2, os_v3, os_v4
  std::vector<Rule> devices_;  // device, brand, model
  std::uint32_t max_captures_ = 0;

  const Rule* first_match(const std::vector<Rule>& rules, std::string_view ua, std::optional<RegexMatch>& match,
                          const MatchScratch& scratch) const;
};

// uap-core's template rule: "$N" -> capture N ("" when absent), then trimmed; an empty
// result means "no value".
std::optional<std::string> expand_uap_template(std::string_view templ, const RegexMatch& match);

}  // namespace streamtally::collector
