// user-agent -> device_type / os / browser: the streaming-client table first, then uap-core,
// then the device classifier. Uncached and thread-safe (everything compiled is read-only).
#pragma once

#include <string>
#include <string_view>

#include "device_classifier.hpp"
#include "streaming_clients.hpp"
#include "uap_parser.hpp"

namespace streamtally::collector {

struct UserAgentClass {
  std::string device_type;
  std::string os;
  std::string browser;
};

class UserAgentClassifier {
 public:
  static Result<UserAgentClassifier> load(const std::string& uap_regexes_path);
  UserAgentClass classify(std::string_view user_agent) const;

 private:
  UapParser uap_;
  StreamingClientRules streaming_;
  DeviceClassifier devices_;
};

}  // namespace streamtally::collector
