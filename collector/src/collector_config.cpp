#include "collector_config.hpp"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>

namespace streamtally::collector {
namespace {

Status read_yaml(const YAML::Node& root, CollectorConfig& c) {
  if (!root.IsMap()) return Error{"the config must be a mapping of settings"};
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& v = entry.second;
    auto strings = [&](std::vector<std::string>& out) {
      if (v.IsSequence())
        for (const auto& item : v) out.push_back(item.as<std::string>());
      else
        out.push_back(v.as<std::string>());
    };
    if (key == "listen") c.listen = v.as<std::string>();
    else if (key == "store") c.store = v.as<std::string>();
    else if (key == "ingest_token" || key == "ingest_tokens") strings(c.ingest_tokens);
    else if (key == "read_token" || key == "read_tokens") strings(c.read_tokens);
    else if (key == "geoip") c.geoip = v.as<std::string>();
    else if (key == "uap") c.uap = v.as<std::string>();
    else if (key == "max_body_bytes") c.max_body_bytes = v.as<std::size_t>();
    else if (key == "max_decompressed_bytes") c.max_decompressed_bytes = v.as<std::size_t>();
    else if (key == "max_records_per_batch") c.max_records_per_batch = v.as<std::size_t>();
    else if (key == "max_inbox_records") c.store_options.max_inbox_records = v.as<int64_t>();
    else if (key == "threads") c.threads = v.as<int>();
    else if (key == "scan_threads") c.store_options.scan_threads = v.as<int>();
    else if (key == "keep_alive_seconds") c.keep_alive_seconds = v.as<int>();
    else if (key == "read_timeout_seconds") c.read_timeout_seconds = v.as<int>();
    else return Error{"unknown setting \"" + key + "\""};
  }
  return Status::Ok();
}

}  // namespace

std::string CollectorConfig::host() const {
  if (listen.starts_with("[")) return listen.substr(1, listen.find(']') - 1);
  return listen.substr(0, listen.rfind(':'));
}

int CollectorConfig::port() const {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return -1;
  try {
    return std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return -1;
  }
}

Status load_config_file(const std::string& path, CollectorConfig& config) {
  try {
    Status s = read_yaml(YAML::LoadFile(path), config);
    if (!s) return Error{path + ": " + s.error()};
    return Status::Ok();
  } catch (const YAML::Exception& e) {
    return Error{path + ": " + e.what()};
  }
}

Status validate(const CollectorConfig& c) {
  const int port = c.port();
  if (port < 0 || port > 65535 || c.host().empty()) return Error{"--listen must be HOST:PORT, got \"" + c.listen + "\""};
  if (c.threads < 1 || c.threads > 256) return Error{"threads must be 1..256"};
  if (c.store_options.scan_threads < 0 || c.store_options.scan_threads > 64) return Error{"scan_threads must be 0 (one per core) .. 64"};
  if (c.max_body_bytes < 1024) return Error{"max_body_bytes must be at least 1024"};
  if (c.store_options.max_inbox_records < 0) return Error{"max_inbox_records must be 0 (no bound) or more"};
  if (c.max_decompressed_bytes < c.max_body_bytes) return Error{"max_decompressed_bytes must be >= max_body_bytes"};
  for (const auto& t : c.ingest_tokens)
    if (t.empty()) return Error{"--ingest-token must not be empty"};
  for (const auto& t : c.read_tokens)
    if (t.empty()) return Error{"--read-token must not be empty"};
  return Status::Ok();
}

Result<CollectorConfig> parse_command_line(int argc, char** argv, int& exit_code, std::string& message) {
  CLI::App app{"streamtally-collector: ingest, storage, enrichment and the report API of StreamTally"};
  std::string listen, store, geoip, uap, config_file;
  std::vector<std::string> ingest_tokens, read_tokens;
  int threads = 0, scan_threads = 0;
  app.add_option("--listen", listen, "HOST:PORT to serve on (default 127.0.0.1:8088)");
  app.add_option("--store", store,
                 "sqlite:PATH or clickhouse://HOST:PORT/DB (default sqlite:/var/lib/streamtally/collector.db)");
  app.add_option("--ingest-token", ingest_tokens, "token edges send on POST /v1/batches (repeatable; required)");
  app.add_option("--read-token", read_tokens, "token for the read API (repeatable; none: reads are open)");
  app.add_option("--geoip", geoip, "tor-geoipdb file (geoip6 beside it is loaded too) or MaxMind .mmdb");
  app.add_option("--uap", uap, "uap-core regexes.yaml");
  app.add_option("--threads", threads, "HTTP worker threads (default 8)");
  app.add_option("--scan-threads", scan_threads,
                 "threads one report's session scan uses, SQLite store (default 0: one per core, at most 4)");
  app.add_option("--config", config_file, "YAML/JSON file with the same settings (listen, store, ingest_tokens, ...)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = e.get_exit_code();
    message = e.get_name() == "CallForHelp" ? app.help() : std::string(e.what()) + "\nRun with --help for usage.";
    return Error{message};
  }
  CollectorConfig config;
  if (!config_file.empty()) {
    if (Status s = load_config_file(config_file, config); !s) {
      exit_code = 2;
      message = "--config " + s.error();
      return Error{message};
    }
  }
  if (app.count("--listen")) config.listen = listen;
  if (app.count("--store")) config.store = store;
  if (app.count("--geoip")) config.geoip = geoip;
  if (app.count("--uap")) config.uap = uap;
  if (app.count("--threads")) config.threads = threads;
  if (app.count("--scan-threads")) config.store_options.scan_threads = scan_threads;
  config.ingest_tokens.insert(config.ingest_tokens.end(), ingest_tokens.begin(), ingest_tokens.end());
  config.read_tokens.insert(config.read_tokens.end(), read_tokens.begin(), read_tokens.end());
  if (Status s = validate(config); !s) {
    exit_code = 2;
    message = s.error();
    return Error{message};
  }
  return config;
}

}  // namespace streamtally::collector
