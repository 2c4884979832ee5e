// An answer to "which country is this address in" that shares nothing with the code under
// test: it reads Debian's tor-geoipdb files itself (getline, stoul, inet_pton) and answers
// by a linear scan over every range — no sorting, no binary search. Used by the geo tests
// and by the collector's dataset, whose expected countries it computes.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace streamtally::test {

inline const std::string kTorGeoip4 = "/usr/share/tor/geoip";
inline const std::string kTorGeoip6 = "/usr/share/tor/geoip6";

using U128 = unsigned __int128;

inline U128 v6_number(const std::string& text) {
  in6_addr a{};
  if (inet_pton(AF_INET6, text.c_str(), &a) != 1) throw std::runtime_error("bad IPv6 " + text);
  U128 n = 0;
  for (int i = 0; i < 16; ++i) n = n * 256 + a.s6_addr[i];
  return n;
}

// The documented normalisation (docs/enrichment.md), written out again here.
inline std::string oracle_code(const std::string& cc) {
  if (cc == "??" || cc == "EU" || cc == "AP" || cc == "A1" || cc == "A2" || cc == "O1") return "unknown";
  if (cc == "UK") return "GB";
  return cc;
}

struct OracleRange {
  U128 first, last;
  std::string country;
};

struct GeoipOracle {
  std::vector<OracleRange> v4, v6;

  static GeoipOracle load() {
    GeoipOracle o;
    read(kTorGeoip4, false, o.v4);
    read(kTorGeoip6, true, o.v6);
    return o;
  }

  static void read(const std::string& path, bool ipv6, std::vector<OracleRange>& into) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::stringstream fields(line);
      std::string a, b, cc;
      std::getline(fields, a, ',');
      std::getline(fields, b, ',');
      std::getline(fields, cc);
      if (ipv6)
        into.push_back({v6_number(a), v6_number(b), oracle_code(cc)});
      else
        into.push_back({std::stoul(a), std::stoul(b), oracle_code(cc)});
    }
  }

  static std::string scan(const std::vector<OracleRange>& ranges, U128 ip) {
    for (const OracleRange& r : ranges)
      if (r.first <= ip && ip <= r.last) return r.country;
    return "unknown";
  }

  // An address as text: IPv4 dotted quad or IPv6; anything else is "unknown".
  std::string country(const std::string& ip) const {
    in_addr a4{};
    if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) return scan(v4, ntohl(a4.s_addr));
    in6_addr a6{};
    if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) return scan(v6, v6_number(ip));
    return "unknown";
  }
};

}  // namespace streamtally::test
