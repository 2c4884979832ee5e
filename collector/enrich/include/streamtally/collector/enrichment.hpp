// Enrichment of a session at ingest: the viewer's country from its IP address and the
// device type / OS / browser from its user-agent (or RTMP flashVer).
//
// Enricher::open loads everything once (geo ranges, compiled user-agent regexes); after
// that it is immutable except for its user-agent cache, so enrich() is safe to call from
// any number of threads at once. enrich() never fails: whatever cannot be known is
// "unknown" — never a guess (docs/enrichment.md lists the rules).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "streamtally/result.hpp"

namespace streamtally::collector {

struct Enrichment {
  std::string country;      // ISO 3166-1 alpha-2, upper case, or "unknown"
  std::string device_type;  // desktop | mobile | tablet | tv | console | bot | unknown
  std::string os;           // OS family ("Android", "iOS", "Windows"…) or "unknown"
  std::string browser;      // browser / player family ("Chrome", "ExoPlayer", "FFmpeg"…) or "unknown"
};

class Enricher {
 public:
  // geoip: a tor-geoipdb file (/usr/share/tor/geoip; its sibling geoip6 is loaded too) or a
  //        MaxMind .mmdb (libmaxminddb); "" -> Debian's default paths.
  // uap:   uap-core regexes.yaml; "" -> /usr/share/uap-core/regexes.yaml
  // Fails (with a message naming the file) when a file cannot be read or parsed.
  static Result<std::unique_ptr<Enricher>> open(const std::string& geoip, const std::string& uap);

  Enrichment enrich(std::string_view client_ip, std::string_view user_agent) const;

  ~Enricher();
  Enricher(const Enricher&) = delete;
  Enricher& operator=(const Enricher&) = delete;

  struct Impl;  // geo lookup, user-agent classifier and cache (src/enricher.cpp)

 private:
  explicit Enricher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamtally::collector
