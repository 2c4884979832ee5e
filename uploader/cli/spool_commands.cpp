// The offline subcommands of `streamtally-spool`: they open the spool, do one thing,
// and print the result. None of them needs the collector.
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"
#include "streamtally/clock.hpp"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"

namespace streamtally::cli {
namespace {

// Lines handed to the spool per transaction: bounded memory, few commits.
constexpr std::size_t kImportChunk = 5000;

std::unique_ptr<Spool> open_spool(const SpoolArgs& args) {
  std::error_code ec;
  if (!args.create && !std::filesystem::exists(args.path, ec)) {
    std::cerr << "streamtally-spool: no spool at " << args.path << "\n";
    return nullptr;
  }
  SpoolOptions options;
  options.path = args.path;
  auto spool = Spool::open(options);
  if (!spool.ok()) {
    std::cerr << "streamtally-spool: cannot open the spool " << args.path << ": " << spool.error() << "\n";
    return nullptr;
  }
  return std::move(spool).value();
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

int print_count(const char* key, const Result<std::size_t>& count, const char* what) {
  if (!count.ok()) {
    std::cerr << "streamtally-spool: " << what << " failed: " << count.error() << "\n";
    return kExitFailure;
  }
  print_json({{key, count.value()}});
  return kExitOk;
}

}  // namespace

int run_stats(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  auto stats = spool->stats();
  if (!stats.ok()) {
    std::cerr << "streamtally-spool: reading stats failed: " << stats.error() << "\n";
    return kExitFailure;
  }
  nlohmann::json out = {
      {"pending", stats->pending},
      {"dead_letters", stats->dead_letters},
      {"dropped", stats->dropped_records},
      {"oldest_pending_ms", nullptr},
      {"bytes", stats->bytes},
      // Beyond the documented five: useful when looking at a live edge.
      {"claimed", stats->claimed},
      {"dropped_bytes", stats->dropped_bytes},
      {"open_sessions", stats->open_sessions},
      {"oldest_pending_age_ms", nullptr},
      {"server_id", spool->server_id()},
  };
  if (stats->oldest_pending_ms) {
    out["oldest_pending_ms"] = *stats->oldest_pending_ms;
    out["oldest_pending_age_ms"] = now_ms() - *stats->oldest_pending_ms;
  }
  print_json(out);
  return kExitOk;
}

int run_import(const SpoolArgs& args, std::istream& in) {
  // Validate everything first: a bad line anywhere imports nothing, so the operator
  // can fix the file and run the same command again without duplicates.
  std::vector<std::string> lines;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are fine
    auto record = decode_record(line);
    if (!record.ok()) {
      std::cerr << "streamtally-spool: line " << number << ": " << record.error() << "\n";
      return kExitBadInput;
    }
    lines.push_back(encode_record(*record));  // canonical form
  }
  if (in.bad()) {
    std::cerr << "streamtally-spool: reading stdin failed\n";
    return kExitFailure;
  }
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  std::size_t appended = 0, dropped = 0;
  for (std::size_t begin = 0; begin < lines.size(); begin += kImportChunk) {
    const std::size_t n = std::min(kImportChunk, lines.size() - begin);
    auto result = spool->append_lines(std::span<const std::string>(lines).subspan(begin, n));
    if (!result.ok()) {
      std::cerr << "streamtally-spool: import failed after " << appended << " records: " << result.error() << "\n";
      return kExitFailure;
    }
    appended += result->appended;
    dropped += result->dropped;
  }
  print_json({{"imported", appended}, {"dropped", dropped}});
  return kExitOk;
}

int run_export(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  auto lines = spool->pending_lines();
  if (!lines.ok()) {
    std::cerr << "streamtally-spool: export failed: " << lines.error() << "\n";
    return kExitFailure;
  }
  for (const auto& line : *lines) std::cout << line << '\n';
  std::cout.flush();
  return std::cout ? kExitOk : kExitFailure;
}

int run_dead_letters_list(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  auto letters = spool->dead_letters();
  if (!letters.ok()) {
    std::cerr << "streamtally-spool: listing dead letters failed: " << letters.error() << "\n";
    return kExitFailure;
  }
  for (const auto& letter : *letters) {
    nlohmann::json out = {{"id", letter.id},
                          {"batch_id", letter.batch_id},
                          {"reason", letter.reason},
                          {"http_status", letter.http_status},
                          {"created_ms", letter.created_ms}};
    // The record itself as an object when it parses, else its raw text.
    auto record = nlohmann::json::parse(letter.line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded())
      out["line"] = letter.line;
    else
      out["record"] = std::move(record);
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  return kExitOk;
}

int run_dead_letters_requeue(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  return print_count("requeued", spool->requeue_dead_letters(), "requeue");
}

int run_dead_letters_purge(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  return print_count("purged", spool->purge_dead_letters(), "purge");
}

int run_recover(const SpoolArgs& args) {
  auto spool = open_spool(args);
  if (!spool) return kExitFailure;
  return print_count("recovered", spool->recover_dead_writers(), "recover");
}

}  // namespace streamtally::cli
