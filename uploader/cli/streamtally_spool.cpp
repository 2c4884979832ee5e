// streamtally-spool: the operator's tool for a spool file (stats, import, export,
// upload, dead letters, recovery). Command-line wiring only; each subcommand lives
// in spool_commands.cpp / upload_command.cpp.
#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.hpp"

namespace {

using streamtally::cli::parse_duration;

// A CLI11 option holding an nginx-style duration ("500ms", "10s", "5m").
CLI::Option* add_duration(CLI::App& app, const std::string& name, std::chrono::milliseconds& target,
                          const std::string& help) {
  auto* option = app.add_option_function<std::string>(
      name,
      [&target, name](const std::string& text) {
        auto parsed = parse_duration(text);
        if (!parsed) throw CLI::ValidationError(name, "not a duration (e.g. 500ms, 10s, 5m): " + text);
        target = *parsed;
      },
      help + " (default " + std::to_string(target.count()) + "ms)");
  option->type_name("DURATION");
  return option;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace streamtally::cli;
  CLI::App app{"streamtally-spool: inspect and operate a StreamTally spool file"};
  app.require_subcommand(1);
  app.fallthrough();  // --spool may come before or after the subcommand

  SpoolArgs spool;
  app.add_option("--spool", spool.path, "the spool file (SQLite)")->required()->envname("STREAMTALLY_SPOOL");

  int code = kExitOk;
  auto* stats = app.add_subcommand(
      "stats", R"(print {"pending","dead_letters","dropped","oldest_pending_ms","bytes",...} as JSON)");
  stats->callback([&] { code = run_stats(spool); });

  auto* import = app.add_subcommand(
      "import", "read NDJSON records on stdin into the spool; all lines are validated first, "
                "a bad line imports nothing and names its number (exit 3)");
  import->callback([&] {
    spool.create = true;
    code = run_import(spool, std::cin);
  });

  auto* export_cmd = app.add_subcommand("export", "write the pending records as NDJSON on stdout");
  export_cmd->callback([&] { code = run_export(spool); });

  UploadArgs upload;
  auto* upload_cmd = app.add_subcommand(
      "upload", "upload the spool to a collector until SIGINT/SIGTERM (or, with --once, until it is drained)");
  upload_cmd->add_option("--collector", upload.uploader.collector_url,
                         "the collector's base URL; batches go to URL/v1/batches")
      ->required()
      ->check(CLI::Validator(
          [](std::string& url) -> std::string {
            if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) return "";
            return "the collector URL must start with http:// or https://: " + url;
          },
          "URL"));
  upload_cmd->add_option("--token", upload.uploader.token, "ingest token (Authorization: Bearer)")
      ->envname("STREAMTALLY_COLLECTOR_TOKEN");
  upload_cmd->add_flag("--once", upload.once, "drain the spool, then exit 0 (exit 4 if --once-timeout passes first)");
  upload_cmd->add_option("--ca-file", upload.uploader.ca_file, "CA bundle for https (default: the system's)")
      ->check(CLI::ExistingFile);
  upload_cmd->add_option("--batch-size", upload.uploader.batch_size, "records per batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  add_duration(*upload_cmd, "--flush", upload.uploader.flush_interval, "send a short batch after this long");
  add_duration(*upload_cmd, "--connect-timeout", upload.uploader.connect_timeout, "TCP/TLS connect timeout");
  add_duration(*upload_cmd, "--request-timeout", upload.uploader.request_timeout, "whole-request timeout");
  add_duration(*upload_cmd, "--backoff-base", upload.uploader.backoff_base, "first retry window");
  add_duration(*upload_cmd, "--backoff-cap", upload.uploader.backoff_cap, "longest retry window");
  add_duration(*upload_cmd, "--lease", upload.uploader.lease,
               "how long a claimed batch stays reserved (at least request + connect timeout + 2s)");
  add_duration(*upload_cmd, "--once-timeout", upload.once_timeout, "give up --once after this long");
  add_duration(*upload_cmd, "--stop-timeout", upload.stop_timeout, "time to finish in-flight work when stopping");
  upload_cmd->callback([&] { code = run_upload(spool, upload); });

  auto* dead = app.add_subcommand("dead-letters", "batches the collector rejected (HTTP 400)");
  dead->require_subcommand(1);
  dead->add_subcommand("list", "print each dead letter as NDJSON (id, batch_id, reason, http_status, record)")
      ->callback([&] { code = run_dead_letters_list(spool); });
  dead->add_subcommand("requeue", "move every dead letter back to the pending records")
      ->callback([&] { code = run_dead_letters_requeue(spool); });
  dead->add_subcommand("purge", "delete every dead letter")->callback([&] { code = run_dead_letters_purge(spool); });

  auto* recover = app.add_subcommand(
      "recover", "close now the open sessions of writer processes that died (end_reason \"recovered\")");
  recover->callback([&] { code = run_recover(spool); });

  app.footer(
      "Exit codes: 0 ok, 1 spool error, 2 usage error, 3 invalid import line, 4 upload --once not drained.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message on stderr
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "streamtally-spool: " << e.what() << "\n";
    return kExitFailure;
  }
  return code;
}
