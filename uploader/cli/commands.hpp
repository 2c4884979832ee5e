// The subcommands of `streamtally-spool`, one function each. They print their
// result on stdout (JSON or NDJSON), errors on stderr, and return the exit code.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>

#include "streamtally/uploader.hpp"

namespace streamtally::cli {

// Exit codes (also in docs/uploader.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the spool could not be opened / read / written
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitBadInput = 3;     // import: a line is not a valid record
inline constexpr int kExitNotDrained = 4;   // upload --once: records left unsent at the deadline

struct SpoolArgs {
  std::string path;
  bool create = false;  // only `import` may create a new spool file
};

int run_stats(const SpoolArgs& spool);
int run_import(const SpoolArgs& spool, std::istream& in);
int run_export(const SpoolArgs& spool);
int run_dead_letters_list(const SpoolArgs& spool);
int run_dead_letters_requeue(const SpoolArgs& spool);
int run_dead_letters_purge(const SpoolArgs& spool);
int run_recover(const SpoolArgs& spool);

struct UploadArgs {
  UploaderOptions uploader;
  bool once = false;
  std::chrono::milliseconds once_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds stop_timeout{5000};
};
int run_upload(const SpoolArgs& spool, UploadArgs args);

// nginx-style durations: "500ms", "10s", "5m", "1h", "1d"; a bare number is seconds.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace streamtally::cli
