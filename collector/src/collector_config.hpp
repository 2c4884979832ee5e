// The collector's settings: command line (SPEC) and --config FILE (YAML, same keys;
// JSON works too). Command-line values win over the file; tokens from both count.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "store.hpp"
#include "streamtally/result.hpp"

namespace streamtally::collector {

struct CollectorConfig {
  std::string listen = "127.0.0.1:8088";
  std::string store = "sqlite:/var/lib/streamtally/collector.db";
  std::vector<std::string> ingest_tokens;
  std::vector<std::string> read_tokens;  // none: reads are open
  std::string geoip;                     // "" -> Debian's tor-geoipdb
  std::string uap;                       // "" -> /usr/share/uap-core/regexes.yaml
  std::size_t max_body_bytes = 16u << 20;           // compressed request body
  std::size_t max_decompressed_bytes = 256u << 20;  // after gzip
  std::size_t max_records_per_batch = 200'000;
  int threads = 8;                     // HTTP worker threads
  StoreOptions store_options;          // scan_threads, max_inbox_records (SQLite store)
  int keep_alive_seconds = 30;
  int read_timeout_seconds = 30;

  std::string host() const;  // of listen
  int port() const;
};

// Parses argv. On --help, or an error, returns the text to print and the exit code
// in `exit_code` (0 for help).
Result<CollectorConfig> parse_command_line(int argc, char** argv, int& exit_code, std::string& message);

// Reads a YAML/JSON config file over `config`.
Status load_config_file(const std::string& path, CollectorConfig& config);

Status validate(const CollectorConfig& config);

}  // namespace streamtally::collector
