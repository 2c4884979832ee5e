// Enrichment throughput, each figure against a baseline measured in the same run:
//   user-agents: uap-core's regexes tried one after the other with PCRE2 (what a plain
//                uap-core port does) vs UapParser (literal pre-filter) vs Enricher (+ cache);
//   countries:   a linear scan over the tor-geoipdb ranges vs GeoipRanges' binary search.
// Not a test: run it by hand (build target enrich_bench) and quote the ratios.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "geoip_ranges.hpp"
#include "pcre2_regex.hpp"
#include "streamtally/collector/enrichment.hpp"
#include "uap_parser.hpp"

using namespace streamtally::collector;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<std::string> uap_test_user_agents() {
  std::vector<std::string> out;
  for (const char* suite : {"test_ua.yaml", "test_os.yaml"}) {
    for (const YAML::Node& t : YAML::LoadFile(std::string("/usr/share/uap-core/tests/") + suite)["test_cases"]) {
      out.push_back(t["user_agent_string"].Scalar());
    }
  }
  return out;
}

}  // namespace

int main() {
  const std::vector<std::string> agents = uap_test_user_agents();

  // Baseline: every regex of each list in order until one matches (no pre-filter).
  const YAML::Node regexes = YAML::LoadFile("/usr/share/uap-core/regexes.yaml");
  std::vector<std::vector<Pcre2Regex>> lists;
  std::uint32_t max_captures = 0;
  for (const char* list : {"user_agent_parsers", "os_parsers", "device_parsers"}) {
    lists.emplace_back();
    for (const YAML::Node& e : regexes[list]) {
      const bool caseless = e["regex_flag"] && e["regex_flag"].Scalar() == "i";
      auto r = Pcre2Regex::compile(e["regex"].Scalar(), caseless);
      if (!r) return std::fprintf(stderr, "%s\n", r.error().c_str()), 1;
      max_captures = std::max(max_captures, r->capture_count());
      lists.back().push_back(std::move(r).value());
    }
  }
  const MatchScratch scratch(max_captures);
  std::size_t sink = 0;
  auto start = Clock::now();
  for (const std::string& ua : agents) {
    for (const auto& list : lists) {
      for (const Pcre2Regex& r : list) {
        if (r.search(ua, scratch)) {
          ++sink;
          break;
        }
      }
    }
  }
  const double plain = double(agents.size()) / seconds_since(start);

  auto parser = UapParser::load("/usr/share/uap-core/regexes.yaml");
  if (!parser) return std::fprintf(stderr, "%s\n", parser.error().c_str()), 1;
  start = Clock::now();
  for (const std::string& ua : agents) sink += parser->parse(ua).device.family.size();
  const double filtered = double(agents.size()) / seconds_since(start);

  auto enricher = Enricher::open("", "");
  if (!enricher) return std::fprintf(stderr, "%s\n", enricher.error().c_str()), 1;
  start = Clock::now();
  for (const std::string& ua : agents) sink += (*enricher)->enrich("8.8.8.8", ua).browser.size();
  const double cold = double(agents.size()) / seconds_since(start);
  const int rounds = 20;
  start = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    for (const std::string& ua : agents) sink += (*enricher)->enrich("8.8.8.8", ua).browser.size();
  }
  const double warm = double(rounds) * double(agents.size()) / seconds_since(start);

  std::printf("user-agents (%zu distinct, uap-core's test strings), per second, one thread:\n", agents.size());
  std::printf("  baseline: uap-core regexes in order, PCRE2 JIT      %10.0f\n", plain);
  std::printf("  UapParser (required-literal pre-filter)            %10.0f  x%.1f\n", filtered, filtered / plain);
  std::printf("  Enricher, first sight (parse + classify + cache)    %10.0f  x%.1f\n", cold, cold / plain);
  std::printf("  Enricher, cached user-agent (+ country lookup)      %10.0f  x%.0f\n", warm, warm / plain);

  // Countries: binary search vs a linear scan over the same ranges.
  start = Clock::now();
  auto ranges = GeoipRanges::load("/usr/share/tor/geoip", "/usr/share/tor/geoip6");
  const double load_ms = seconds_since(start) * 1000;
  if (!ranges) return std::fprintf(stderr, "%s\n", ranges.error().c_str()), 1;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> flat;
  {
    std::FILE* f = std::fopen("/usr/share/tor/geoip", "r");
    char line[128];
    while (f && std::fgets(line, sizeof line, f)) {
      unsigned long a, b;
      if (line[0] != '#' && std::sscanf(line, "%lu,%lu", &a, &b) == 2) flat.emplace_back(std::uint32_t(a), std::uint32_t(b));
    }
    if (f) std::fclose(f);
  }
  std::mt19937 random(1);
  std::vector<std::uint32_t> ips(200000);
  for (auto& ip : ips) ip = random();
  const std::size_t linear_count = 300;
  start = Clock::now();
  for (std::size_t i = 0; i < linear_count; ++i) {
    for (const auto& [a, b] : flat) {
      if (a <= ips[i] && ips[i] <= b) {
        ++sink;
        break;
      }
    }
  }
  const double linear = double(linear_count) / seconds_since(start);
  start = Clock::now();
  for (std::uint32_t ip : ips) sink += (*ranges)->country(IpAddress{true, ip, 0}).size();
  const double binary = double(ips.size()) / seconds_since(start);
  std::printf("IPv4 countries (%zu ranges), lookups per second, one thread (load: %.0f ms):\n", flat.size(), load_ms);
  std::printf("  baseline: linear scan                               %10.0f\n", linear);
  std::printf("  GeoipRanges binary search                           %10.0f  x%.0f\n", binary, binary / linear);
  return sink == 0 ? 1 : 0;
}
