// A MaxMind DB (.mmdb: GeoLite2/GeoIP2 Country or City, DB-IP, IPFire exports…) read with
// libmaxminddb, memory-mapped. Lookups on an open database are thread-safe (libmaxminddb
// documents MMDB_lookup_* as safe once MMDB_open has returned).
#pragma once

#include <maxminddb.h>

#include <string>

#include "geo_lookup.hpp"

namespace streamtally::collector {

class MmdbReader final : public GeoLookup {
 public:
  static Result<std::unique_ptr<MmdbReader>> open(const std::string& path);
  ~MmdbReader() override;
  MmdbReader(const MmdbReader&) = delete;
  MmdbReader& operator=(const MmdbReader&) = delete;

  // country.iso_code of the record, normalised; "unknown" when absent.
  std::string country(const IpAddress& ip) const override;

 private:
  MmdbReader() = default;
  mutable MMDB_s db_{};  // libmaxminddb's lookup API takes a non-const pointer but does not write
};

}  // namespace streamtally::collector
