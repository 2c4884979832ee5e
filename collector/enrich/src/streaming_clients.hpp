// Media players, encoders and RTMP flashVer strings that uap-core misreads or does not know
// (ffmpeg's "Lavf/…" comes out as WMPlayer, ExoPlayer as Other, AppleCoreMedia as a WebView,
// flashVer strings as nothing at all). An ordered table, first match wins; each entry names
// only what the string itself proves — anything else is left to uap-core or stays unknown.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pcre2_regex.hpp"

namespace streamtally::collector {

struct StreamingClient {
  std::string browser;                     // player / encoder family
  std::optional<std::string> os;           // only when the string names it
  std::optional<std::string> device_type;  // only when the string proves it
};

class StreamingClientRules {
 public:
  static Result<StreamingClientRules> compile();
  std::optional<StreamingClient> recognise(std::string_view user_agent) const;

 private:
  struct Rule {
    Pcre2Regex regex;
    StreamingClient client;
    int os_group = 0;  // > 0: a capture that says which OS (see os_from_token)
  };
  std::vector<Rule> rules_;
};

}  // namespace streamtally::collector
