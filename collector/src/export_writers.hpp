// File formats of GET /v1/export: CSV (RFC 4180) and XLSX (libxlsxwriter).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "streamtally/result.hpp"

namespace streamtally::collector {

// A header line, then one line per row in the columns' order. Text cells that a
// spreadsheet would run as a formula (=, +, @, -<letter>) get a leading apostrophe.
std::string sessions_csv(const std::vector<std::string>& columns, const std::vector<nlohmann::json>& rows);

// One "Sessions" sheet with the same header and rows.
Result<std::string> sessions_xlsx(const std::vector<std::string>& columns, const std::vector<nlohmann::json>& rows);

}  // namespace streamtally::collector
