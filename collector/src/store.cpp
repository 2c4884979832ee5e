// What every Store shares: choosing one from --store, the session columns, the
// report-too-large error.
#include "store.hpp"

#include "clickhouse_store.hpp"
#include "session_columns.hpp"
#include "sqlite_store.hpp"

namespace streamtally::collector {

Result<std::unique_ptr<Store>> open_store(const std::string& spec, const StoreOptions& options) {
  std::string path = spec;
  if (spec.starts_with("sqlite:")) path = spec.substr(7);
  else if (spec.starts_with("clickhouse://")) {
    auto address = parse_clickhouse_url(spec);
    if (!address) return Error{address.error()};
    auto store = ClickHouseStore::open(*address);
    if (!store) return Error{store.error()};
    return std::unique_ptr<Store>(std::move(*store));
  } else if (spec.find("://") != std::string::npos)
    return Error{"--store must be sqlite:PATH or clickhouse://HOST:PORT/DB, got " + spec};
  if (path.empty()) return Error{"--store sqlite: needs a file path"};
  auto store = SqliteStore::open(path, options);
  if (!store) return Error{store.error()};
  return std::unique_ptr<Store>(std::move(*store));
}

std::string report_too_large_error() {
  return std::string(kReportTooLarge) + "more than " + std::to_string(kMaxReportPoints) +
         " points (groups x buckets); narrow the range, filter, or use fewer dimensions or longer buckets";
}

std::vector<std::string> Store::session_columns(SessionGroup group) const {
  std::vector<std::string> names;
  for (const SessionColumn& c : session_columns_of(group)) names.emplace_back(c.name);
  return names;
}

}  // namespace streamtally::collector
