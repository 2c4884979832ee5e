#include "report_model.hpp"

#include <array>
#include <cctype>
#include <utility>

namespace streamtally::collector {
namespace {

constexpr std::array<std::pair<Metric, std::string_view>, 8> kMetrics{{
    {Metric::Sessions, "sessions"},
    {Metric::Views, "views"},
    {Metric::UniqueViewers, "unique_viewers"},
    {Metric::Viewtime, "viewtime"},
    {Metric::BytesOut, "bytes_out"},
    {Metric::BytesIn, "bytes_in"},
    {Metric::Ccu, "ccu"},
    {Metric::MaxCcu, "max_ccu"},
}};

constexpr std::array<std::string_view, 11> kPlainDimensions{
    "stream", "server", "host", "type", "protocol", "country", "device_type", "os", "browser", "user_id",
    "referer_domain"};

}  // namespace

std::string_view metric_name(Metric m) {
  for (const auto& [metric, name] : kMetrics)
    if (metric == m) return name;
  return {};
}

std::optional<Metric> parse_metric(std::string_view name) {
  for (const auto& [metric, n] : kMetrics)
    if (n == name) return metric;
  return std::nullopt;
}

bool is_dimension(std::string_view name) {
  for (std::string_view d : kPlainDimensions)
    if (d == name) return true;
  if (!name.starts_with("tag.") || name.size() == 4 || name.size() > 4 + 64) return false;
  // Tag keys are looked up through a JSON path: keep them to a safe alphabet.
  for (char c : name.substr(4))
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

bool ReportQuery::wants(std::initializer_list<Metric> any) const {
  for (Metric m : metrics)
    for (Metric a : any)
      if (m == a) return true;
  return false;
}

}  // namespace streamtally::collector
