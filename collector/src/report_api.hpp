// The read API (SPEC "Collector query API"): parameters in, JSON/CSV/XLSX out.
// Independent of the HTTP library: the server passes the raw query string and
// writes back what these functions return.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store.hpp"

namespace streamtally::collector {

struct ApiResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string content_disposition;  // attachments (export)
};

ApiResponse json_error(int status, const std::string& message);

class ReportApi {
 public:
  explicit ReportApi(Store& store) : store_(store) {}
  // `now` is the server's clock; tests pin time through from/to/at.
  ApiResponse events(std::string_view query, int64_t now) const;
  ApiResponse timeseries(std::string_view query, int64_t now) const;
  ApiResponse sessions(std::string_view query, int64_t now) const;
  ApiResponse top(std::string_view query, int64_t now) const;
  ApiResponse month_to_date(std::string_view query, int64_t now) const;
  ApiResponse export_report(std::string_view query, int64_t now) const;

 private:
  Store& store_;
};


}  // namespace streamtally::collector
