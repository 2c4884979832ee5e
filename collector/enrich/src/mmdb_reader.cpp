#include "mmdb_reader.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace streamtally::collector {

Result<std::unique_ptr<MmdbReader>> MmdbReader::open(const std::string& path) {
  std::unique_ptr<MmdbReader> reader(new MmdbReader());
  const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &reader->db_);
  if (status != MMDB_SUCCESS) {
    // MMDB_open leaves nothing to close on failure; make the destructor skip MMDB_close.
    reader->db_ = MMDB_s{};
    return Error{"cannot open MaxMind database " + path + ": " + MMDB_strerror(status)};
  }
  return reader;
}

MmdbReader::~MmdbReader() {
  if (db_.file_size != 0) MMDB_close(&db_);
}

std::string MmdbReader::country(const IpAddress& ip) const {
  sockaddr_storage storage{};
  if (ip.is_v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(ip.v4);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    for (int i = 15; i >= 0; --i) sin6->sin6_addr.s6_addr[i] = static_cast<unsigned char>(ip.v6 >> ((15 - i) * 8));
  }
  int mmdb_error = MMDB_SUCCESS;
  MMDB_lookup_result_s result = MMDB_lookup_sockaddr(&db_, reinterpret_cast<sockaddr*>(&storage), &mmdb_error);
  if (mmdb_error != MMDB_SUCCESS || !result.found_entry) return kUnknown;

  MMDB_entry_data_s data{};
  if (MMDB_get_value(&result.entry, &data, "country", "iso_code", nullptr) != MMDB_SUCCESS || !data.has_data ||
      data.type != MMDB_DATA_TYPE_UTF8_STRING) {
    return kUnknown;
  }
  return normalise_country_code(std::string_view(data.utf8_string, data.data_size));
}

}  // namespace streamtally::collector
