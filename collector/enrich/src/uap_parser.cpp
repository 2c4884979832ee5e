#include "uap_parser.hpp"

#include "required_literal.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>

namespace streamtally::collector {

namespace {

constexpr std::array<const char*, 5> kAgentKeys = {"family_replacement", "v1_replacement", "v2_replacement",
                                                    "v3_replacement", "v4_replacement"};
constexpr std::array<const char*, 5> kOsKeys = {"os_replacement", "os_v1_replacement", "os_v2_replacement",
                                                 "os_v3_replacement", "os_v4_replacement"};
constexpr std::array<const char*, 3> kDeviceKeys = {"device_replacement", "brand_replacement",
                                                     "model_replacement"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

std::optional<std::string> group_value(const RegexMatch& match, std::size_t i) {
  const auto g = match.group(i);
  if (!g || g->empty()) return std::nullopt;
  return std::string(*g);
}

// Value i of a rule: its replacement template when the entry has one, else capture i+1.
std::optional<std::string> field(const std::vector<std::optional<std::string>>& replacements, std::size_t i,
                                 const RegexMatch& match, std::size_t group) {
  if (i < replacements.size() && replacements[i]) return expand_uap_template(*replacements[i], match);
  return group_value(match, group);
}

}  // namespace

std::optional<std::string> expand_uap_template(std::string_view templ, const RegexMatch& match) {
  std::string out;
  for (std::size_t i = 0; i < templ.size(); ++i) {
    if (templ[i] == '$' && i + 1 < templ.size() && templ[i + 1] >= '1' && templ[i + 1] <= '9') {
      if (const auto g = match.group(std::size_t(templ[i + 1] - '0'))) out.append(*g);
      ++i;
    } else {
      out.push_back(templ[i]);
    }
  }
  std::string trimmed = trim(out);
  if (trimmed.empty()) return std::nullopt;
  return trimmed;
}

Result<UapParser> UapParser::load(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return Error{"cannot read uap-core regexes " + path + ": " + e.what()};
  }

  UapParser parser;
  auto load_list = [&](const char* list_name, auto keys, std::vector<Rule>& into) -> Status {
    const YAML::Node list = root[list_name];
    if (!list || !list.IsSequence()) return Error{path + ": no '" + list_name + "' list"};
    for (std::size_t i = 0; i < list.size(); ++i) {
      const YAML::Node entry = list[i];
      const YAML::Node regex_node = entry["regex"];
      const std::string where = path + ": " + list_name + "[" + std::to_string(i) + "]";
      if (!regex_node || !regex_node.IsScalar()) return Error{where + " has no regex"};
      const YAML::Node flag = entry["regex_flag"];
      const bool caseless = flag && flag.IsScalar() && flag.Scalar() == "i";
      auto regex = Pcre2Regex::compile(regex_node.Scalar(), caseless);
      if (!regex) return Error{where + ": " + regex.error()};
      Rule rule{std::move(regex).value(), {}, required_literal(regex_node.Scalar()), caseless};
      if (caseless) rule.literal = lower(rule.literal);
      for (const char* key : keys) {
        const YAML::Node value = entry[key];
        // A present-but-null value ("device_replacement:") counts as absent, as in uap-core's parsers.
        if (value && value.IsScalar()) {
          rule.replacements.emplace_back(value.Scalar());
        } else {
          rule.replacements.emplace_back(std::nullopt);
        }
      }
      parser.max_captures_ = std::max(parser.max_captures_, rule.regex.capture_count());
      into.push_back(std::move(rule));
    }
    return Status::Ok();
  };

  try {
    if (Status s = load_list("user_agent_parsers", kAgentKeys, parser.agents_); !s) return Error{s.error()};
    if (Status s = load_list("os_parsers", kOsKeys, parser.oses_); !s) return Error{s.error()};
    if (Status s = load_list("device_parsers", kDeviceKeys, parser.devices_); !s) return Error{s.error()};
  } catch (const YAML::Exception& e) {
    return Error{"malformed uap-core regexes " + path + ": " + e.what()};
  }
  return parser;
}

const UapParser::Rule* UapParser::first_match(const std::vector<Rule>& rules, std::string_view ua,
                                              std::optional<RegexMatch>& match, const MatchScratch& scratch) const {
  // The literal pre-check skips most rules with a substring search; it never changes the
  // answer (a rule whose literal is absent cannot match), only the time it takes.
  std::string ua_lower;
  for (const Rule& rule : rules) {
    if (!rule.literal.empty()) {
      if (rule.caseless && ua_lower.empty()) ua_lower = lower(ua);
      const std::string_view haystack = rule.caseless ? std::string_view(ua_lower) : ua;
      if (haystack.find(rule.literal) == std::string_view::npos) continue;
    }
    match = rule.regex.search(ua, scratch);
    if (match) return &rule;
  }
  return nullptr;
}

UserAgentParts::Agent UapParser::parse_agent(std::string_view ua) const {
  const MatchScratch scratch(max_captures_);
  std::optional<RegexMatch> m;
  UserAgentParts::Agent agent;
  const Rule* rule = first_match(agents_, ua, m, scratch);
  if (rule == nullptr) return agent;
  agent.family = field(rule->replacements, 0, *m, 1).value_or("Other");
  agent.major = field(rule->replacements, 1, *m, 2);
  agent.minor = field(rule->replacements, 2, *m, 3);
  agent.patch = field(rule->replacements, 3, *m, 4);
  return agent;
}

UserAgentParts::Os UapParser::parse_os(std::string_view ua) const {
  const MatchScratch scratch(max_captures_);
  std::optional<RegexMatch> m;
  UserAgentParts::Os os;
  const Rule* rule = first_match(oses_, ua, m, scratch);
  if (rule == nullptr) return os;
  os.family = field(rule->replacements, 0, *m, 1).value_or("Other");
  os.major = field(rule->replacements, 1, *m, 2);
  os.minor = field(rule->replacements, 2, *m, 3);
  os.patch = field(rule->replacements, 3, *m, 4);
  os.patch_minor = field(rule->replacements, 4, *m, 5);
  return os;
}

UserAgentParts::Device UapParser::parse_device(std::string_view ua) const {
  const MatchScratch scratch(max_captures_);
  std::optional<RegexMatch> m;
  UserAgentParts::Device device;
  const Rule* rule = first_match(devices_, ua, m, scratch);
  if (rule == nullptr) return device;
  device.family = field(rule->replacements, 0, *m, 1).value_or("Other");
  // Unlike family and model, the brand has no default capture: only a template gives one.
  if (rule->replacements[1]) device.brand = expand_uap_template(*rule->replacements[1], *m);
  device.model = field(rule->replacements, 2, *m, 1);
  return device;
}

UserAgentParts UapParser::parse(std::string_view ua) const {
  return UserAgentParts{parse_agent(ua), parse_os(ua), parse_device(ua)};
}

}  // namespace streamtally::collector
