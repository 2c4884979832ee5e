#include "streamtally/collector/enrichment.hpp"

#include "geo_lookup.hpp"
#include "user_agent_cache.hpp"
#include "user_agent_classifier.hpp"

namespace streamtally::collector {

namespace {
constexpr const char* kDebianUapRegexes = "/usr/share/uap-core/regexes.yaml";
// A typical entry (key, three short strings, list and hash nodes) is ~300 bytes: ~10 MB for
// 32k distinct user-agents; ~36 MB if every key were 1 KiB.
constexpr std::size_t kUserAgentCacheEntries = 32768;
// SPEC caps user_agent at 1024 bytes; the enricher cuts there too, so a hostile 10 MB string
// costs what a 1 KiB one does (uap-core's ~1,400 regexes scan the whole subject).
constexpr std::size_t kMaxUserAgentBytes = 1024;
}  // namespace

struct Enricher::Impl {
  std::unique_ptr<GeoLookup> geo;
  UserAgentClassifier user_agents;
  mutable UserAgentCache<UserAgentClass> cache{kUserAgentCacheEntries};
};

Result<std::unique_ptr<Enricher>> Enricher::open(const std::string& geoip, const std::string& uap) {
  auto geo = open_geo_lookup(geoip);
  if (!geo) return Error{geo.error()};
  auto user_agents = UserAgentClassifier::load(uap.empty() ? kDebianUapRegexes : uap);
  if (!user_agents) return Error{user_agents.error()};
  std::unique_ptr<Impl> impl(new Impl{std::move(geo).value(), std::move(user_agents).value()});
  return std::unique_ptr<Enricher>(new Enricher(std::move(impl)));
}

Enricher::Enricher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Enricher::~Enricher() = default;

Enrichment Enricher::enrich(std::string_view client_ip, std::string_view user_agent) const {
  Enrichment out;
  const auto ip = parse_ip(client_ip);
  out.country = !ip || is_non_public(*ip) ? kUnknown : impl_->geo->country(*ip);

  user_agent = user_agent.substr(0, kMaxUserAgentBytes);
  std::optional<UserAgentClass> ua = impl_->cache.find(user_agent);
  if (!ua) {
    ua = impl_->user_agents.classify(user_agent);
    impl_->cache.insert(user_agent, *ua);
  }
  out.device_type = std::move(ua->device_type);
  out.os = std::move(ua->os);
  out.browser = std::move(ua->browser);
  return out;
}

}  // namespace streamtally::collector
