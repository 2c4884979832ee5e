#include "streaming_clients.hpp"

namespace streamtally::collector {

namespace {

struct RuleSpec {
  const char* pattern;
  const char* browser;
  const char* os;           // nullptr: not named by the string
  const char* device_type;  // nullptr: left to the classifier
  int os_group;             // capture holding an OS token (WIN/MAC/LNX/AND, Android)
};

// Order matters: the exact signatures of tools come before the generic flashVer rule.
constexpr RuleSpec kRules[] = {
    // RTMP publishers. ffmpeg publishes with "FMLE/3.0 (compatible; Lavf…)". "FMLE/3.0 (compatible;
    // FMSc/1.0)" is Adobe's Flash Media Live Encoder string, which many encoders copy (OBS Studio,
    // GStreamer rtmp2sink, HaishinKit…), so it names a kind of client, not a product.
    {R"(^FMLE/\S+ \(compatible; Lavf)", "FFmpeg", nullptr, nullptr, 0},
    {R"(^Wirecast/)", "Wirecast", nullptr, nullptr, 0},
    {R"(^FMLE/)", "FMLE-compatible encoder", nullptr, nullptr, 0},
    // RTMP players. ffmpeg's default play flashVer is "LNX 9,0,124,2", librtmp's (rtmpdump,
    // GStreamer rtmpsrc, VLC) "LNX 10,0,32,18" / "WIN 10,0,32,18": these are tools, whatever
    // the platform token pretends.
    {R"(^LNX 9,0,124,2$)", "FFmpeg", nullptr, nullptr, 0},
    {R"(^(?:LNX|WIN|MAC) 10,0,32,18$)", "librtmp", nullptr, nullptr, 0},
    // A real Flash Player: "WIN 32,0,0,465", "MAC 11,1,102,55", "LNX 11,2,202,644", "AND 11,1,115,81".
    // Flash Player existed for desktops only on WIN/MAC/LNX.
    {R"(^(WIN|MAC|LNX) \d+,\d+,\d+,\d+)", "Flash Player", nullptr, "desktop", 1},
    {R"(^(AND) \d+,\d+,\d+,\d+)", "Flash Player", nullptr, nullptr, 1},
    // HTTP players and libraries.
    {R"((?:^|[ (;])Lavf/?\d)", "FFmpeg", nullptr, nullptr, 0},
    {R"(ExoPlayerLib/|ExoPlayer/|AndroidXMedia3/)", "ExoPlayer", nullptr, nullptr, 0},
    {R"(AppleCoreMedia/)", "AppleCoreMedia", nullptr, nullptr, 0},
    {R"((?:^|\s)(?:VLC/|LibVLC/|VLC media player))", "VLC", nullptr, nullptr, 0},
    {R"(GStreamer)", "GStreamer", nullptr, nullptr, 0},
    {R"(OBS-Studio/|\bOBS/\d)", "OBS Studio", nullptr, nullptr, 0},
    {R"(Wirecast)", "Wirecast", nullptr, nullptr, 0},
    {R"(^Roku)", "Roku", "Roku", "tv", 0},
    {R"((?:^|\s)(?:Kodi|XBMC)/\d)", "Kodi", nullptr, nullptr, 0},
    {R"(^(?:mpv[ /]\d|libmpv))", "mpv", nullptr, nullptr, 0},
    {R"(^stagefright/)", "Android MediaPlayer", "Android", nullptr, 0},
    // Command-line downloaders: scripts, not viewers with a device.
    {R"(^curl/)", "curl", nullptr, "bot", 0},
    {R"(^Wget/)", "Wget", nullptr, "bot", 0},
};

std::optional<std::string> os_from_token(std::string_view token) {
  if (token == "WIN") return "Windows";
  if (token == "MAC") return "Mac OS X";
  if (token == "LNX") return "Linux";
  if (token == "AND") return "Android";
  return std::nullopt;
}

}  // namespace

Result<StreamingClientRules> StreamingClientRules::compile() {
  StreamingClientRules rules;
  for (const RuleSpec& spec : kRules) {
    auto regex = Pcre2Regex::compile(spec.pattern);
    if (!regex) return Error{"streaming client rule: " + regex.error()};
    StreamingClient client{spec.browser, std::nullopt, std::nullopt};
    if (spec.os) client.os = spec.os;
    if (spec.device_type) client.device_type = spec.device_type;
    rules.rules_.push_back(Rule{std::move(regex).value(), std::move(client), spec.os_group});
  }
  return rules;
}

std::optional<StreamingClient> StreamingClientRules::recognise(std::string_view ua) const {
  for (const Rule& rule : rules_) {
    const auto match = rule.regex.search(ua);
    if (!match) continue;
    StreamingClient client = rule.client;
    if (rule.os_group > 0) {
      if (const auto token = match->group(std::size_t(rule.os_group))) client.os = os_from_token(*token);
    }
    return client;
  }
  return std::nullopt;
}

}  // namespace streamtally::collector
