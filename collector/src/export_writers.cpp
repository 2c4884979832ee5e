#include "export_writers.hpp"

#include <unistd.h>
#include <xlsxwriter.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace streamtally::collector {
namespace {

std::string cell_text(const nlohmann::json& v) {
  if (v.is_null()) return {};
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool looks_like_formula(const std::string& s) {
  if (s.empty()) return false;
  const char c = s[0];
  if (c == '=' || c == '+' || c == '@' || c == '\t' || c == '\r') return true;
  return c == '-' && !(s.size() > 1 && std::isdigit(static_cast<unsigned char>(s[1])));
}

std::string csv_field(const nlohmann::json& v) {
  std::string s = cell_text(v);
  if (v.is_string() && looks_like_formula(s)) s.insert(s.begin(), '\'');
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}


}  // namespace

std::string sessions_csv(const std::vector<std::string>& columns, const std::vector<nlohmann::json>& rows) {
  std::string out;
  for (std::size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + columns[i];
  out += "\r\n";
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (i) out.push_back(',');
      auto it = row.find(columns[i]);
      if (it != row.end()) out += csv_field(*it);
    }
    out += "\r\n";
  }
  return out;
}

Result<std::string> sessions_xlsx(const std::vector<std::string>& columns, const std::vector<nlohmann::json>& rows) {
  // libxlsxwriter 1.1.4 writes to a file only: a private temp file, read back, removed.
  std::string path = (std::filesystem::temp_directory_path() / "streamtally-export-XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) return Error{"export: cannot create a temp file"};
  close(fd);
  struct Remove {
    std::string path;
    ~Remove() { std::filesystem::remove(path); }
  } remove_later{path};
  {
    lxw_workbook* wb = workbook_new(path.c_str());
    if (!wb) return Error{"export: cannot start the workbook"};
    lxw_worksheet* sheet = workbook_add_worksheet(wb, "Sessions");
    for (std::size_t c = 0; c < columns.size(); ++c)
      worksheet_write_string(sheet, 0, static_cast<lxw_col_t>(c), columns[c].c_str(), nullptr);
    lxw_row_t r = 1;
    for (const auto& row : rows) {
      for (std::size_t c = 0; c < columns.size(); ++c) {
        auto it = row.find(columns[c]);
        if (it == row.end() || it->is_null()) continue;
        const auto col = static_cast<lxw_col_t>(c);
        if (it->is_number())
          worksheet_write_number(sheet, r, col, it->get<double>(), nullptr);
        else
          worksheet_write_string(sheet, r, col, cell_text(*it).c_str(), nullptr);
      }
      ++r;
    }
    if (workbook_close(wb) != LXW_NO_ERROR) return Error{"export: cannot write the workbook"};
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace streamtally::collector
