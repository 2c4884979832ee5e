#include "device_classifier.hpp"

#include <array>

namespace streamtally::collector {

namespace {

// Markers a device puts in its own user-agent.
constexpr const char* kConsole = R"(PlayStation|PLAYSTATION|\bXbox|Nintendo (?:Switch|WiiU|Wii|3DS)|\bOUYA\b)";
// Web0S (with a zero) is LG's TV OS; plain "webOS" was also Palm's phone OS, hence the TV guard.
constexpr const char* kTv =
    R"(SmartTV|SMART-TV|Smart-TV|SMARTTV|\bHbbTV/|\bWeb0S\b|webOS\.TV|\bNetCast|BRAVIA|GoogleTV|Google ?TV|)"
    R"(Android ?TV|\bAFT[A-Z]\w*\b|\bCrKey/|AppleTV|Apple ?TV|\btvOS\b|Tizen[^;)]*; ?TV|\bTV Safari|)"
    R"(\bVIDAA|Opera TV|\bViera\b|\bDTV\b|PhilipsTV|\bNETTV/|HybridTV|\bSTB\b|SmartHub|\bTV Build/|)"
    R"(Chromecast|\bFire TV\b|\bSHIELD Android TV\b)";
constexpr const char* kTablet = R"(\biPad\b|\bTablet\b|\bKindle\b|\bSilk/)";
constexpr const char* kMobile = R"(\biPhone\b|\biPod\b|Windows Phone|\bKAIOS\b|KaiOS|BlackBerry|BB10|Opera Mini|Symbian)";

constexpr std::array<std::string_view, 20> kDesktopOs = {
    "Windows",  "Mac OS X", "Linux",  "Ubuntu",    "Fedora",  "Debian",  "Chrome OS", "FreeBSD", "OpenBSD",
    "NetBSD",   "Solaris",  "SUSE",   "Red Hat",   "Gentoo",  "Mandriva", "Slackware", "Kubuntu", "Linux Mint",
    "CentOS",   "Arch Linux"};

bool is_desktop_os(const std::string& family) {
  for (std::string_view os : kDesktopOs) {
    if (family == os) return true;
  }
  // uap-core names old Windows versions "Windows XP", "Windows 7"…; the handheld ones are not desktops.
  return family.starts_with("Windows ") && family.find("Phone") == std::string::npos &&
         family.find("Mobile") == std::string::npos && family.find("CE") == std::string::npos &&
         family.find("RT") == std::string::npos;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

Result<DeviceClassifier> DeviceClassifier::compile() {
  DeviceClassifier classifier;
  const std::array<std::pair<Pcre2Regex*, const char*>, 4> patterns = {{{&classifier.console_, kConsole},
                                                                          {&classifier.tv_, kTv},
                                                                          {&classifier.tablet_, kTablet},
                                                                          {&classifier.mobile_, kMobile}}};
  for (const auto& [regex, pattern] : patterns) {
    auto compiled = Pcre2Regex::compile(pattern);
    if (!compiled) return Error{"device classifier: " + compiled.error()};
    *regex = std::move(compiled).value();
  }
  return classifier;
}

std::string DeviceClassifier::classify(std::string_view ua, const UserAgentParts& parts) const {
  const std::string& device = parts.device.family;
  const std::string& os = parts.os.family;

  // uap-core files crawlers, monitors and HTTP libraries under the device "Spider".
  if (device == "Spider") return "bot";
  if (console_.matches(ua) || contains(device, "PlayStation") || contains(device, "Xbox") ||
      contains(device, "Nintendo")) {
    return "console";
  }
  if (tv_.matches(ua) || os == "tvOS" || os == "Roku" || device == "Roku" || device == "AppleTV" ||
      device == "Chromecast" || contains(device, "Smart TV") || contains(device, "HbbTV")) {
    return "tv";
  }
  if (device == "iPad" || tablet_.matches(ua) || contains(device, "Tablet") || contains(device, "Kindle")) {
    return "tablet";
  }
  // uap-core files every Android user-agent without a known model under "Generic Smartphone",
  // which is a guess; only its "Generic Feature Phone" rests on phone-only tokens (MIDP, WAP…).
  if (mobile_.matches(ua) || device == "iPhone" || device == "iPod" || device == "Generic Feature Phone" ||
      (device == "Generic Smartphone" && contains(ua, "Mobile")) || os == "iOS" || os == "Windows Phone" || os == "KaiOS" ||
      os == "BlackBerry OS" || os == "Symbian OS" || os == "Firefox OS") {
    return "mobile";
  }
  if (os == "Android") {
    // Android browsers say "Mobile" on phones and leave it out on tablets (Google's documented
    // convention for Chrome); players and apps (ExoPlayer, Dalvik) follow no such rule.
    if (contains(ua, "Mobile")) return "mobile";
    if (ua.starts_with("Mozilla/")) return "tablet";
    return "unknown";
  }
  if (is_desktop_os(os) || device == "Mac") return "desktop";
  return "unknown";
}

}  // namespace streamtally::collector
