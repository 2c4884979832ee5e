// device_type from what uap-core parsed plus a few user-agent tokens uap-core has no rule
// for (smart-TV and console markers). The rules, in order, are in docs/enrichment.md;
// when none proves a type the answer is "unknown".
#pragma once

#include <string>
#include <string_view>

#include "pcre2_regex.hpp"
#include "uap_parser.hpp"

namespace streamtally::collector {

class DeviceClassifier {
 public:
  static Result<DeviceClassifier> compile();
  // desktop | mobile | tablet | tv | console | bot | unknown
  std::string classify(std::string_view user_agent, const UserAgentParts& parts) const;

 private:
  Pcre2Regex console_;
  Pcre2Regex tv_;
  Pcre2Regex tablet_;
  Pcre2Regex mobile_;
};

}  // namespace streamtally::collector
