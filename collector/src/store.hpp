// Store: where the collector keeps sessions and answers reports. The HTTP layer
// talks only to this interface, so another backend (ClickHouse) can sit behind it.
//
// Promises every backend keeps:
//  - ingest() is atomic per batch and returns only after the batch is durable;
//    per (server_id, session_id) the record with the highest seq wins; a seq seen
//    before is a duplicate and changes nothing; an Idempotency-Key seen before
//    replays without storing anything.
//  - reports are computed from what ingest() committed (read-your-writes).
//  - all methods are thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "report_model.hpp"
#include "streamtally/record.hpp"
#include "streamtally/result.hpp"

namespace streamtally::collector {

// A decoded, validated record with what the collector derived from it at ingest.
struct IngestRecord {
  SessionRecord record;
  std::string country = "unknown";
  std::string device_type = "unknown";
  std::string os = "unknown";
  std::string browser = "unknown";
  std::string referer_domain;  // host part of the referer, "" when none
  // Set by the SQLite store's admission (inbox_admission.hpp): the first record admitted
  // of a session the store never held, so the applier reads no row for it. Not kept
  // in the inbox file: read back from it, a record is looked up.
  bool new_session = false;
};

struct IngestBatch {
  std::string idempotency_key;  // "" when the client sent none
  std::vector<IngestRecord> records;
  // The body as its client sent it when that was gzip NDJSON ("" otherwise). The SQLite
  // store keeps it as the batch's inbox row: about a fifth of the records' binary form.
  std::string gzip_ndjson;
};

// Fills the derived fields (country, device, ...) of a record.
using EnrichFn = std::function<void(IngestRecord&)>;

struct IngestOutcome {
  int64_t accepted = 0;
  int64_t duplicates = 0;
  bool replayed = false;  // the Idempotency-Key was seen before: nothing stored
};

struct SessionsPage {
  int64_t total = 0;
  std::vector<nlohmann::json> rows;
};

struct StoreStats {
  int64_t sessions = 0;
  int64_t inbox_records = 0;  // acknowledged, not yet in the reports' tables (SQLite store)
  int64_t size_bytes = 0;  // database files on disk
};

// A report that would exceed this many points (groups x buckets) fails with an error
// starting with kReportTooLarge; the API answers 400 with it.
inline constexpr int64_t kMaxReportPoints = 5'000'000;
inline constexpr std::string_view kReportTooLarge = "report too large: ";
// The whole error, for every store.
std::string report_too_large_error();

class Store {
 public:
  virtual ~Store() = default;
  // Takes the batch: the SQLite store hands its records on to the thread that applies
  // them (inbox_handoff.hpp). A caller that needs the batch again passes a copy.
  virtual Result<IngestOutcome> ingest(IngestBatch batch) = 0;
  virtual Result<std::vector<GroupTotals>> events(const ReportQuery& query) = 0;
  virtual Result<Timeseries> timeseries(const ReportQuery& query) = 0;
  virtual Result<SessionsPage> sessions(const SessionsQuery& query) = 0;
  virtual Result<StoreStats> stats() = 0;
  // Why the store, working, takes no batch now — the SQLite store's backlog of
  // acknowledged records not yet applied is at its bound — or nothing. The client is
  // asked to come back later (503 with Retry-After): its records wait in its own spool.
  virtual std::optional<std::string> ingest_refusal() const { return std::nullopt; }
  // Columns a SessionsQuery of this group may order by (and that CSV export writes):
  // the same for every store (session_columns.hpp).
  std::vector<std::string> session_columns(SessionGroup group) const;
};

// Settings of the SQLite store (ClickHouse plans its own threads and has no inbox).
struct StoreOptions {
  int scan_threads = 0;  // slices a report's session scan reads in parallel; 0: one per core, at most 4
  // Acknowledged records not yet applied beyond which ingest is refused (503) until the
  // applier catches up: a bound on the inbox file and on how long a report waits for
  // the backlog (~8 s at 1M on 2 cores). 0: no bound.
  int64_t max_inbox_records = 1'000'000;
  // Derives the fields of the records the SQLite store reads back from an inbox row
  // kept as gzip NDJSON, as ingest did (the HTTP layer's enrichment); empty: "unknown".
  EnrichFn enrich;
};

// "sqlite:PATH" (or a bare path) or "clickhouse://HOST:PORT/DB".
Result<std::unique_ptr<Store>> open_store(const std::string& spec, const StoreOptions& options = {});

}  // namespace streamtally::collector
