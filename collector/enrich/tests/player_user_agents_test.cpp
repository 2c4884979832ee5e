// Real player, encoder and browser user-agents (and RTMP flashVer strings) -> the device
// type / OS / browser an operator should see. Expectations come from what each client is
// (ffmpeg's rtmpproto.c flashVer defaults, ExoPlayer's Util.getUserAgent format, Apple's
// AppleCoreMedia on iPhone/iPad/Mac/Apple TV…), not from running the code.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "streamtally/collector/enrichment.hpp"

namespace streamtally::collector {
namespace {

struct Case {
  const char* user_agent;
  const char* device_type;
  const char* os;
  const char* browser;
};

// clang-format off
const Case kCases[] = {
  // ffmpeg: HTTP "Lavf/<libavformat version>"; RTMP publish "FMLE/3.0 (compatible; Lavf…)"; RTMP play "LNX 9,0,124,2".
  {"Lavf/58.76.100", "unknown", "unknown", "FFmpeg"},
  {"Lavf/59.27.100", "unknown", "unknown", "FFmpeg"},
  {"FMLE/3.0 (compatible; Lavf59.27.100)", "unknown", "unknown", "FFmpeg"},
  {"LNX 9,0,124,2", "unknown", "unknown", "FFmpeg"},
  // librtmp's default flashVer (rtmpdump, GStreamer rtmpsrc, VLC's RTMP access).
  {"LNX 10,0,32,18", "unknown", "unknown", "librtmp"},
  // Adobe FMLE's flashVer, copied by OBS Studio, GStreamer rtmp2sink and others; Wirecast has its own.
  {"FMLE/3.0 (compatible; FMSc/1.0)", "unknown", "unknown", "FMLE-compatible encoder"},
  {"Wirecast/FM 1.0 (compatible; FMSc/1.0)", "unknown", "unknown", "Wirecast"},
  // Adobe Flash Player flashVer: platform token + version.
  {"WIN 32,0,0,465", "desktop", "Windows", "Flash Player"},
  {"MAC 32,0,0,465", "desktop", "Mac OS X", "Flash Player"},
  {"LNX 11,2,202,644", "desktop", "Linux", "Flash Player"},
  {"AND 11,1,115,81", "unknown", "Android", "Flash Player"},
  // ExoPlayer / Media3: "<app>/<version> (Linux;Android <release>) ExoPlayerLib/<v>": no model, so
  // phone, tablet or TV cannot be told apart.
  {"ExoPlayerLib/2.18.1", "unknown", "unknown", "ExoPlayer"},
  {"MyTV/1.4.2 (Linux;Android 12) ExoPlayerLib/2.18.1", "unknown", "Android", "ExoPlayer"},
  {"YouTube/1.0 (Linux;Android 13) AndroidXMedia3/1.1.1", "unknown", "Android", "ExoPlayer"},
  // Apple's native HLS stack.
  {"AppleCoreMedia/1.0.0.20E247 (iPhone; U; CPU OS 16_4 like Mac OS X; en_us)", "mobile", "iOS", "AppleCoreMedia"},
  {"AppleCoreMedia/1.0.0.20E247 (iPad; U; CPU OS 16_4 like Mac OS X; en_us)", "tablet", "iOS", "AppleCoreMedia"},
  {"AppleCoreMedia/1.0.0.22A3354 (Macintosh; U; Intel Mac OS X 10_15_7; en_us)", "desktop", "Mac OS X", "AppleCoreMedia"},
  {"AppleCoreMedia/1.0.0.20K71 (Apple TV; U; CPU OS 16_1 like Mac OS X; en_us)", "tv", "ATV OS X", "AppleCoreMedia"},
  // VLC, GStreamer, mpv, Kodi.
  {"VLC/3.0.18 LibVLC/3.0.18", "unknown", "unknown", "VLC"},
  {"VLC/3.0.20 LibVLC/3.0.20 (Linux; Android 13)", "unknown", "Android", "VLC"},
  {"GStreamer souphttpsrc 1.22.0 libsoup/3.2.2", "unknown", "unknown", "GStreamer"},
  {"GStreamer/1.22.0", "unknown", "unknown", "GStreamer"},
  {"mpv 0.35.1", "unknown", "unknown", "mpv"},
  {"libmpv", "unknown", "unknown", "mpv"},
  {"Kodi/20.2 (X11; Linux x86_64) Debian/12 App_Bitness/64 Version/20.2-(20.2.0)-Git:20230629-5f418d0b13", "desktop", "Debian", "Kodi"},
  {"Kodi/20.1 (Linux; Android 11.0; SHIELD Android TV Build/RQ1A.210105.003) Android/11.0.0 Sys_CPU/aarch64 App_Bitness/64 Version/20.1-(20.1.0)-Git:20230312-9c1d2ac86d", "tv", "Android", "Kodi"},
  // OBS browser source.
  {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OBS/30.0.0", "desktop", "Windows", "OBS Studio"},
  // TVs and streaming boxes.
  {"Roku/DVP-12.5 (12.5.0.4178-46)", "tv", "Roku", "Roku"},
  {"Roku4640X/DVP-7.70 (297.70E04154A)", "tv", "Roku", "Roku"},
  {"Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36", "tv", "Tizen", "Safari"},
  {"Mozilla/5.0 (Linux; Tizen 2.3) AppleWebKit/538.1 (KHTML, like Gecko)Version/2.3 TV Safari/538.1", "tv", "Tizen", "Safari"},
  {"Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager", "tv", "Web0S", "Chrome"},
  {"HbbTV/1.5.1 (+DRM;Samsung;SmartTV2020;T-KTSUDEUC-1302.1;;) Tizen/5.5 (+TVPLUS+SmartHubLink) Chrome/69.0.3497.106", "tv", "Tizen", "HbbTV"},
  {"Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0.5359.160 Mobile Safari/537.36", "tv", "Android", "Chrome Mobile WebView"},
  {"Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.225 Safari/537.36 CrKey/1.56.500000", "tv", "Chromecast", "Chrome"},
  // Consoles.
  {"Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15", "console", "unknown", "Safari"},
  {"Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19041", "console", "Windows", "Edge"},
  {"Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393", "console", "unknown", "unknown"},
  // Browsers.
  {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "mobile", "iOS", "Mobile Safari"},
  {"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "tablet", "iOS", "Mobile Safari"},
  {"Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36", "mobile", "Android", "Chrome Mobile"},
  {"Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36", "tablet", "Android", "Chrome"},
  {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", "desktop", "Mac OS X", "Safari"},
  {"Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/119.0", "desktop", "Linux", "Firefox"},
  {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.72", "desktop", "Windows", "Edge"},
  // Android's own media stack: it names the OS, not the form factor.
  {"Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)", "unknown", "Android", "Android"},
  {"stagefright/1.2 (Linux;Android 5.1.1)", "unknown", "Android", "Android MediaPlayer"},
  // Robots and scripts.
  {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", "unknown", "Googlebot"},
  {"curl/7.88.1", "bot", "unknown", "curl"},
  {"Wget/1.21.3", "bot", "unknown", "Wget"},
  // Nothing to go on.
  {"", "unknown", "unknown", "unknown"},
  {"-", "unknown", "unknown", "unknown"},
  {"something nobody knows/1.0", "unknown", "unknown", "unknown"},
};
// clang-format on

class PlayerUserAgents : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto opened = Enricher::open("", "");
    ASSERT_TRUE(opened.ok()) << opened.error();
    enricher_ = std::move(opened).value().release();
  }
  static void TearDownTestSuite() { delete enricher_; }
  static Enricher* enricher_;
};
Enricher* PlayerUserAgents::enricher_ = nullptr;

TEST_F(PlayerUserAgents, ClassifiedAsTheClientReallyIs) {
  for (const Case& c : kCases) {
    const Enrichment e = enricher_->enrich("203.0.113.9", c.user_agent);
    EXPECT_EQ(e.device_type, c.device_type) << c.user_agent;
    EXPECT_EQ(e.os, c.os) << c.user_agent;
    EXPECT_EQ(e.browser, c.browser) << c.user_agent;
    EXPECT_EQ(e.country, "unknown");  // 203.0.113.0/24 is documentation space
  }
}

TEST_F(PlayerUserAgents, CachedAnswersEqualFirstAnswers) {
  for (int round = 0; round < 3; ++round) {
    for (const Case& c : kCases) {
      const Enrichment e = enricher_->enrich("", c.user_agent);
      EXPECT_EQ(e.device_type + "|" + e.os + "|" + e.browser,
                std::string(c.device_type) + "|" + c.os + "|" + c.browser)
          << "round " << round << ": " << c.user_agent;
    }
  }
}

TEST_F(PlayerUserAgents, ManyThreadsAgreeWithTheTable) {
  // A fresh enricher so the threads race on an empty cache.
  auto opened = Enricher::open("", "");
  ASSERT_TRUE(opened.ok()) << opened.error();
  const Enricher& shared = **opened;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const Case& c = kCases[(std::size_t(i) * 7 + std::size_t(t)) % std::size(kCases)];
        const Enrichment e = shared.enrich("::1", c.user_agent);
        if (e.device_type != c.device_type || e.os != c.os || e.browser != c.browser) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(PlayerUserAgents, LongAndBinaryUserAgentsAreSafe) {
  const std::string huge(10 * 1024 * 1024, 'A');  // what a hostile client could send
  EXPECT_EQ(enricher_->enrich("", huge).browser, "unknown");
  const std::string binary("\xff\xfe\x00\x01Lavf/58\x80", 12);
  EXPECT_EQ(enricher_->enrich("", binary).device_type, "unknown");
}

// Throughput, printed for the notes (never asserted: timing depends on the machine).
TEST_F(PlayerUserAgents, ThroughputFigures) {
  std::vector<std::string> distinct;
  for (const YAML::Node& test : YAML::LoadFile("/usr/share/uap-core/tests/test_ua.yaml")["test_cases"]) {
    distinct.push_back(test["user_agent_string"].Scalar());
  }
  auto fresh = Enricher::open("", "");
  ASSERT_TRUE(fresh.ok());
  auto start = std::chrono::steady_clock::now();
  for (const std::string& ua : distinct) (void)(*fresh)->enrich("8.8.8.8", ua);
  const double cold_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int warm_rounds = 20;
  start = std::chrono::steady_clock::now();
  for (int r = 0; r < warm_rounds; ++r) {
    for (const std::string& ua : distinct) (void)(*fresh)->enrich("2a00:1450:4001:80b::200e", ua);
  }
  const double warm_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ figures  ] enrich, distinct user-agents (uncached, full uap-core parse): "
            << distinct.size() / cold_s << " /s\n"
            << "[ figures  ] enrich, repeated user-agents (cache hits + geo lookup): "
            << warm_rounds * distinct.size() / warm_s << " /s\n";
}

}  // namespace
}  // namespace streamtally::collector
