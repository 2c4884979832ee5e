// One interface for every geo database: an address in, an ISO 3166-1 alpha-2 code out.
#pragma once

#include <memory>
#include <string>

#include "ip_address.hpp"
#include "streamtally/result.hpp"

namespace streamtally::collector {

inline constexpr const char* kUnknown = "unknown";

class GeoLookup {
 public:
  virtual ~GeoLookup() = default;
  // Upper-case alpha-2 code, or "unknown" when the database has no country for it.
  // Must be safe to call from many threads at once.
  virtual std::string country(const IpAddress& ip) const = 0;
};

// Normalises what the data files call a country into ISO 3166-1 alpha-2 or "unknown":
// "??" and the continent pseudo-codes EU / AP / A1 / A2 / O1 are no country; "UK" is GB.
std::string normalise_country_code(std::string_view code);

// Opens `path` by its kind: ".mmdb" -> libmaxminddb, else tor-geoipdb text ranges (the
// sibling "<path>6" is loaded too). "" -> /usr/share/tor/geoip (+ geoip6).
Result<std::unique_ptr<GeoLookup>> open_geo_lookup(const std::string& path);

}  // namespace streamtally::collector
