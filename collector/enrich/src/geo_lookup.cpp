#include "geo_lookup.hpp"

#include "geoip_ranges.hpp"
#include "mmdb_reader.hpp"

namespace streamtally::collector {

namespace {
constexpr const char* kDebianGeoip = "/usr/share/tor/geoip";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::string normalise_country_code(std::string_view code) {
  if (code.size() != 2) return kUnknown;
  std::string upper;
  for (char c : code) {
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') return kUnknown;  // "??", digits ("A1"…)
    upper.push_back(c);
  }
  if (upper == "EU" || upper == "AP") return kUnknown;  // "somewhere in Europe / Asia-Pacific"
  if (upper == "UK") return "GB";                       // reserved by ISO for the United Kingdom
  return upper;
}

Result<std::unique_ptr<GeoLookup>> open_geo_lookup(const std::string& path) {
  const std::string file = path.empty() ? kDebianGeoip : path;
  if (ends_with(file, ".mmdb")) {
    auto reader = MmdbReader::open(file);
    if (!reader) return Error{reader.error()};
    return std::unique_ptr<GeoLookup>(std::move(reader).value());
  }
  // tor ships "geoip" (IPv4) and "geoip6" (IPv6) side by side; given the IPv6 file itself,
  // load just that one.
  const std::string ipv6 = ends_with(file, "6") ? "" : file + "6";
  auto ranges = GeoipRanges::load(file, ipv6);
  if (!ranges) return Error{ranges.error()};
  return std::unique_ptr<GeoLookup>(std::move(ranges).value());
}

}  // namespace streamtally::collector
