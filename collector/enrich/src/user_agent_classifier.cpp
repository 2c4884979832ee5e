#include "user_agent_classifier.hpp"

#include "geo_lookup.hpp"  // kUnknown

namespace streamtally::collector {

namespace {
std::string known_or_unknown(const std::string& uap_value) { return uap_value == "Other" ? kUnknown : uap_value; }
}  // namespace

Result<UserAgentClassifier> UserAgentClassifier::load(const std::string& path) {
  auto uap = UapParser::load(path);
  if (!uap) return Error{uap.error()};
  auto streaming = StreamingClientRules::compile();
  if (!streaming) return Error{streaming.error()};
  auto devices = DeviceClassifier::compile();
  if (!devices) return Error{devices.error()};
  UserAgentClassifier classifier;
  classifier.uap_ = std::move(uap).value();
  classifier.streaming_ = std::move(streaming).value();
  classifier.devices_ = std::move(devices).value();
  return classifier;
}

UserAgentClass UserAgentClassifier::classify(std::string_view ua) const {
  if (ua.empty() || ua == "-") return {kUnknown, kUnknown, kUnknown};

  UserAgentParts parts = uap_.parse(ua);
  const auto client = streaming_.recognise(ua);
  if (client) {
    parts.agent.family = client->browser;
    if (client->os) parts.os.family = *client->os;
  }
  UserAgentClass result;
  result.device_type = client && client->device_type ? *client->device_type : devices_.classify(ua, parts);
  result.os = known_or_unknown(parts.os.family);
  result.browser = known_or_unknown(parts.agent.family);
  return result;
}

}  // namespace streamtally::collector
