// tor-geoipdb ranges ("start,end,CC" lines; IPv4 as integers, IPv6 as text) held as sorted
// parallel arrays and searched by binary search. Immutable after load: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "geo_lookup.hpp"

namespace streamtally::collector {

class GeoipRanges final : public GeoLookup {
 public:
  // Loads an IPv4 file and, when ipv6_path is not empty, an IPv6 file. A missing IPv6 file
  // is not an error (IPv6 addresses then stay "unknown"); a malformed line is.
  static Result<std::unique_ptr<GeoipRanges>> load(const std::string& ipv4_path, const std::string& ipv6_path);

  std::string country(const IpAddress& ip) const override;
  std::size_t ipv4_ranges() const { return v4_.starts.size(); }
  std::size_t ipv6_ranges() const { return v6_.starts.size(); }

 private:
  // Country codes packed in two bytes ('U' << 8 | 'S'); 0 = no country.
  template <class Address>
  struct Table {
    std::vector<Address> starts;
    std::vector<Address> ends;
    std::vector<std::uint16_t> countries;
    void sort_if_needed();
    std::uint16_t find(Address ip) const;
  };

  Table<std::uint32_t> v4_;
  Table<Uint128> v6_;

  static Status load_file(const std::string& path, GeoipRanges& into);
};

}  // namespace streamtally::collector
