// collector_bench — what the collector costs, next to what plain SQLite costs for the
// same data in the same run.
//
//  1. Ingest: gzip NDJSON batches POSTed over loopback by several keep-alive
//     connections to a real streamtally-collector (enrichment, rollups, durable
//     commits included). Baseline: the same records inserted into a plain SQLite
//     table (prepared statement, one transaction per batch, WAL, synchronous=FULL).
//  2. Reports at 1M and 10M sessions: events by stream (32 days), timeseries ccu
//     (24 h, 1 h buckets), top 10 streams by bytes for the month, month-to-date.
//     The store is filled in-process through Store::ingest in big batches (the
//     ingest code path without HTTP, so 10M sessions load in minutes). Baseline: the
//     same sessions in one plain table with an index on started_at, answered with
//     GROUP BY (and the same sweep for ccu).
//
// --store clickhouse runs both parts on the ClickHouse store instead, against a
// clickhouse-server the bench starts on 127.0.0.1 (the baselines stay plain SQLite).
//
// Usage: collector_bench [--sessions 1000000,10000000] [--ingest-records 400000]
//                        [--connections 4] [--dir DIR] [--store sqlite|clickhouse] [--keep]
// --keep leaves the stores in DIR (reports_N.db), to profile a report against them with a
// real collector: streamtally-collector --store sqlite:DIR/reports_N.db
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "attribution.hpp"
#include "ccu_sweep.hpp"
#include "clickhouse_server.hpp"
#include "clickhouse_store.hpp"
#include "report_api.hpp"
#include "sqlite_database.hpp"
#include "sqlite_store.hpp"
#include "streamtally/gzip.hpp"
#include "streamtally/record_codec.hpp"
#include "test_support.hpp"

using namespace streamtally;
using namespace streamtally::collector;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kEnd = 1'794'009'600'000;  // 2026-11-07T00:00:00Z: "now" of the report runs

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The store under test: SQLite files in the bench directory, or databases on a
// clickhouse-server started for the run (--store clickhouse).
std::unique_ptr<test::ClickHouseServer> clickhouse_server;

std::string store_spec(const std::filesystem::path& dir, const std::string& name) {
  if (clickhouse_server) return clickhouse_server->store_url(name);
  return "sqlite:" + (dir / (name + ".db")).string();
}

Result<std::unique_ptr<Store>> open_bench_store(const std::filesystem::path& dir, const std::string& name) {
  if (!clickhouse_server) std::filesystem::remove((dir / (name + ".db")).string());
  return open_store(store_spec(dir, name));
}

// What ingest acknowledged is in the report tables (SQLite applies its inbox).
Status settle(Store& store) {
  if (auto* sqlite = dynamic_cast<SqliteStore*>(&store)) return sqlite->apply_inbox();
  return Status::Ok();
}

const char* const kUserAgents[] = {
    "VLC/3.0.18 LibVLC/3.0.18", "Lavf/59.27.100",
    "AppleCoreMedia/1.0.0.20E247 (iPhone; U; CPU OS 16_4 like Mac OS X; en_us)",
    "MyTV/1.4.2 (Linux;Android 12) ExoPlayerLib/2.18.1", "Roku/DVP-12.5 (12.5.0.4178-46)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"};
const char* const kBrowsers[] = {"VLC", "FFmpeg", "AppleCoreMedia", "ExoPlayer", "Roku", "Chrome"};
const char* const kDevices[] = {"unknown", "unknown", "mobile", "unknown", "tv", "desktop"};
const char* const kOs[] = {"unknown", "unknown", "iOS", "Android", "Roku", "Windows"};
const char* const kCountries[] = {"US", "DE", "GB", "FR", "BR", "IN", "JP", "NL", "ES", "IT", "CA", "AU"};
const char* const kPlayProtocols[] = {"hls", "dash", "rtmp"};

// One synthetic session: 40 streams on 2 servers each, 12 countries, 6 players.
// Sessions come in start order, as edges send them.
SessionRecord make_session(std::mt19937_64& rng, int64_t index, int64_t count, int64_t span_ms,
                           IngestRecord* enrichment) {
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  SessionRecord r;
  const int64_t stream = pick(40);
  r.stream = "live/channel-" + std::to_string(stream);
  r.server_id = "srv-" + std::to_string((stream * 2 + pick(2)) % 16);
  r.host = "edge-" + r.server_id.substr(4) + ".example.net";
  r.session_id = "s-" + std::to_string(index);
  const bool publish = pick(100) < 3;
  r.type = publish ? SessionType::Publish : SessionType::Play;
  r.protocol = publish ? Protocol::Rtmp : *parse_protocol(kPlayProtocols[pick(3)]);
  const int64_t ua = pick(6), country = pick(12);
  r.user_agent = kUserAgents[ua];
  r.client_ip = "10." + std::to_string(pick(256)) + "." + std::to_string(pick(256)) + "." + std::to_string(pick(256));
  r.referer = "https://www.example.com/watch";
  if (pick(2)) r.user_id = "user-" + std::to_string(pick(100000));
  r.started_at = kEnd - span_ms + index * span_ms / count + pick(1000);
  // Viewing times: most short, some long (80% < 10 min, 18% < 1 h, 2% < 4 h).
  const int64_t kind = pick(100);
  const int64_t duration = std::min<int64_t>(
      kind < 80 ? pick(600'000) : kind < 98 ? pick(3'600'000) : pick(4 * 3'600'000), kEnd - r.started_at);
  r.updated_at = r.started_at + duration;
  r.ended_at = r.updated_at;
  r.state = SessionState::Closed;
  r.end_reason = EndReason::Client;
  r.bytes_out = publish ? 10'000 : static_cast<uint64_t>(duration) * (200 + static_cast<uint64_t>(pick(400)));
  r.bytes_in = publish ? static_cast<uint64_t>(duration) * 500 : 2'000;
  if (enrichment) {
    enrichment->country = kCountries[country];
    enrichment->browser = kBrowsers[ua], enrichment->device_type = kDevices[ua], enrichment->os = kOs[ua];
    enrichment->referer_domain = "www.example.com";
  }
  return r;
}

// ---- 1. ingest over HTTP ---------------------------------------------------------------

void bench_ingest(const std::filesystem::path& dir, int64_t records, int connections) {
  // What edges send: every session reports every 60 s (seq 0, 1, ...) and closes;
  // batches hold whatever was due in a time window, 1000 records each.
  constexpr int64_t kBatch = 1000, kInterim = 60'000;
  std::mt19937_64 rng(1);
  std::vector<SessionRecord> all;
  for (int64_t i = 0; static_cast<int64_t>(all.size()) < records; ++i) {
    SessionRecord s = make_session(rng, i, records / 8, 6 * 3'600'000, nullptr);
    const int64_t end = *s.ended_at;
    for (int64_t seq = 0;; ++seq) {
      SessionRecord u = s;
      u.seq = seq;
      u.updated_at = std::min(end, s.started_at + (seq + 1) * kInterim);
      const double part = static_cast<double>(u.updated_at - s.started_at) / static_cast<double>(std::max<int64_t>(1, end - s.started_at));
      u.bytes_out = static_cast<uint64_t>(static_cast<double>(s.bytes_out) * part);
      u.bytes_in = static_cast<uint64_t>(static_cast<double>(s.bytes_in) * part);
      const bool last = u.updated_at == end;
      u.state = last ? SessionState::Closed : SessionState::Open;
      u.ended_at = last ? std::optional<int64_t>(end) : std::nullopt;
      u.end_reason = last ? EndReason::Client : EndReason::None;
      all.push_back(std::move(u));
      if (last || static_cast<int64_t>(all.size()) == records) break;
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.updated_at < b.updated_at; });
  std::vector<std::string> bodies;
  std::vector<std::vector<SessionRecord>> decoded;
  for (std::size_t first = 0; first < all.size(); first += kBatch) {
    std::string ndjson;
    decoded.emplace_back();
    for (std::size_t i = first; i < std::min(all.size(), first + kBatch); ++i) {
      encode_record(all[i], ndjson);
      ndjson.push_back('\n');
      decoded.back().push_back(all[i]);
    }
    bodies.push_back(gzip_compress(ndjson));
  }

  const int port = test::free_port();
  test::ChildProcess::Options options;
  options.argv = {std::string(STREAMTALLY_BUILD_DIR) + "/collector/streamtally-collector", "--listen",
                  "127.0.0.1:" + std::to_string(port), "--store", store_spec(dir, "ingest"),
                  "--ingest-token", "bench", "--threads", std::to_string(connections + 1)};
  options.stderr_path = (dir / "collector.log").string();
  test::ChildProcess collector(options);
  if (!test::wait_until([&] { return test::http_get("http://127.0.0.1:" + std::to_string(port) + "/healthz").status == 200; },
                        std::chrono::seconds(60))) {
    std::printf("collector did not start: %s\n", test::read_file(options.stderr_path).c_str());
    return;
  }

  std::atomic<std::size_t> next{0};
  std::atomic<int64_t> failures{0}, refusals{0};
  const auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c)
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_read_timeout(120, 0);
      for (std::size_t i; (i = next++) < bodies.size();) {
        httplib::Headers headers{{"Authorization", "Bearer bench"},
                                 {"Content-Encoding", "gzip"},
                                 {"Idempotency-Key", "bench-" + std::to_string(i)}};
        auto res = client.Post("/v1/batches", headers, bodies[i], "application/x-ndjson");
        // As an edge does: a collector at its backlog bound (max_inbox_records) asks to
        // come back after Retry-After.
        for (; res && res->status == 503; res = client.Post("/v1/batches", headers, bodies[i], "application/x-ndjson")) {
          ++refusals;
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        if (!res || res->status != 200) {
          if (++failures <= 3)
            std::printf("  batch %zu: %s\n", i, res ? (std::to_string(res->status) + " " + res->body).c_str()
                                                     : httplib::to_string(res.error()).c_str());
        }
      }
    });
  for (auto& t : threads) t.join();
  const double acknowledged_s = seconds_since(started);
  // Until every record is in the tables reports read: a report applies what still waits
  // in the inbox, and its time counts.
  const auto applied = test::http_get("http://127.0.0.1:" + std::to_string(port) +
                                      "/v1/events?dimensions=stream&metrics=sessions&from=0");
  if (applied.status != 200) std::printf("  report after ingest: %ld %s\n", static_cast<long>(applied.status), applied.body.c_str());
  const double collector_s = seconds_since(started);
  // Where the time went: the collector's own histogram of store transactions.
  const std::string metrics = test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics").body;
  auto value = [&](const std::string& name) {
    const auto pos = metrics.find("\n" + name + " ");
    return pos == std::string::npos ? 0.0 : std::stod(metrics.substr(pos + name.size() + 2));
  };
  const double commit_s = value("streamtally_collector_ingest_commit_seconds_sum");
  const double request_s = value("streamtally_collector_request_duration_seconds_sum{endpoint=\"batches\"}");
  collector.stop();

  // The store alone: the same batches through Store::ingest in this process (no HTTP,
  // no JSON, no enrichment), until SQLite's inbox is applied — the ceiling the HTTP
  // path can reach.
  double store_s = 0;
  {
    auto store = open_bench_store(dir, "store_only");
    if (!store) return (void)std::printf("  store: %s\n", store.error().c_str());
    const auto store_started = Clock::now();
    for (const auto& batch : decoded) {
      IngestBatch b;
      for (const SessionRecord& r : batch) {
        IngestRecord in;
        in.record = r;
        b.records.push_back(std::move(in));
      }
      if (auto outcome = (*store)->ingest(std::move(b)); !outcome) std::printf("  store: %s\n", outcome.error().c_str());
    }
    if (Status s = settle(**store); !s) std::printf("  store: %s\n", s.error().c_str());
    store_s = seconds_since(store_started);
  }

  // Baseline: the same records into a plain table, one transaction per batch.
  auto db = open_database((dir / "plain-ingest.db").string(), false);
  (void)exec_sql_status(db->get(),
                 "CREATE TABLE plain(server_id, session_id, seq, state, type, protocol, stream, host, client_ip, "
                 "user_agent, referer, user_id, started_at, updated_at, ended_at, bytes_in, bytes_out)");
  Statement insert(db->get(), "INSERT INTO plain VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)");
  const auto baseline_started = Clock::now();
  for (const auto& batch : decoded) {
    (void)exec_sql_status(db->get(), "BEGIN");
    for (const SessionRecord& r : batch) {
      insert.bind(1, r.server_id).bind(2, r.session_id).bind(3, r.seq).bind(4, to_string(r.state));
      insert.bind(5, to_string(r.type)).bind(6, to_string(r.protocol)).bind(7, r.stream).bind(8, r.host);
      insert.bind(9, r.client_ip).bind(10, r.user_agent).bind(11, r.referer).bind(12, r.user_id);
      insert.bind(13, r.started_at).bind(14, r.updated_at).bind(15, r.ended_at);
      insert.bind(16, static_cast<int64_t>(r.bytes_in)).bind(17, static_cast<int64_t>(r.bytes_out));
      (void)insert.run();
      insert.reset();
    }
    (void)exec_sql_status(db->get(), "COMMIT");
  }
  const double baseline_s = seconds_since(baseline_started);
  const double rate = static_cast<double>(records) / collector_s, base = static_cast<double>(records) / baseline_s;
  std::printf("ingest: %lld records (interim updates every 60 s) in %zu gzip batches over %d connections: "
              "%.0f records/s (%.2f s, %lld failed)\n",
              static_cast<long long>(records), bodies.size(), connections, rate, collector_s,
              static_cast<long long>(failures.load()));
  std::printf("  every batch acknowledged after %.2f s (%.0f records/s); the rest is the inbox being applied\n",
              acknowledged_s, static_cast<double>(records) / acknowledged_s);
  if (refusals > 0)
    std::printf("  %lld POSTs were refused with 503 (backlog at max_inbox_records) and retried after 1 s\n",
                static_cast<long long>(refusals.load()));
  std::printf("  inside the collector: %.2f s in store transactions, %.2f s in whole requests (summed over "
              "connections; decode + enrich = the difference)\n",
              commit_s, request_s);
  std::printf("  the store alone (same batches, in-process Store::ingest): %.0f records/s\n",
              static_cast<double>(records) / store_s);
  std::printf("ingest baseline (plain SQLite inserts, same records, 1000 per transaction): %.0f records/s\n", base);
  std::printf("ingest ratio collector/baseline: %.2f  (aim: >= 200000 records/s)\n\n", rate / base);
}

// ---- 2. reports --------------------------------------------------------------------------

double median_ms(const std::function<void()>& run, int repeats = 5) {
  run();  // warm the page cache
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t = Clock::now();
    run();
    ms.push_back(seconds_since(t) * 1000.0);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void bench_reports(const std::filesystem::path& dir, int64_t sessions) {
  const int64_t span = 30 * kDayMs;
  const std::string plain_path = (dir / ("plain-" + std::to_string(sessions) + ".db")).string();
  std::filesystem::remove(plain_path);
  auto store = open_bench_store(dir, "reports_" + std::to_string(sessions));
  if (!store) return (void)std::printf("store: %s\n", store.error().c_str());
  auto plain = open_database(plain_path, false);
  (void)exec_sql_status(plain->get(), "PRAGMA synchronous=OFF; CREATE TABLE plain(stream TEXT, server TEXT, type TEXT, "
                               "protocol TEXT, country TEXT, client_ip TEXT, user_agent TEXT, started_at INTEGER, "
                               "end_t INTEGER, bytes_in INTEGER, bytes_out INTEGER)");
  Statement insert(plain->get(), "INSERT INTO plain VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");

  std::mt19937_64 rng(2);
  const auto load_started = Clock::now();
  double plain_load_s = 0;
  constexpr int64_t kLoadBatch = 50'000;
  for (int64_t first = 0; first < sessions; first += kLoadBatch) {
    IngestBatch batch;
    for (int64_t i = first; i < std::min(sessions, first + kLoadBatch); ++i) {
      IngestRecord in;
      in.record = make_session(rng, i, sessions, span, &in);
      batch.records.push_back(std::move(in));
    }
    const auto plain_started = Clock::now();
    (void)exec_sql_status(plain->get(), "BEGIN");
    for (const IngestRecord& in : batch.records) {
      const SessionRecord& r = in.record;
      insert.bind(1, r.stream).bind(2, r.server_id).bind(3, to_string(r.type)).bind(4, to_string(r.protocol));
      insert.bind(5, in.country).bind(6, r.client_ip).bind(7, r.user_agent).bind(8, r.started_at);
      insert.bind(9, *r.ended_at).bind(10, static_cast<int64_t>(r.bytes_in)).bind(11, static_cast<int64_t>(r.bytes_out));
      (void)insert.run();
      insert.reset();
    }
    (void)exec_sql_status(plain->get(), "COMMIT");
    plain_load_s += seconds_since(plain_started);
    auto outcome = (*store)->ingest(std::move(batch));  // after the plain table: it takes the batch
    if (!outcome) return (void)std::printf("load: %s\n", outcome.error().c_str());
  }
  if (Status s = settle(**store); !s) return (void)std::printf("load: %s\n", s.error().c_str());
  const auto index_started = Clock::now();
  (void)exec_sql_status(plain->get(), "CREATE INDEX plain_by_start ON plain(started_at)");
  plain_load_s += seconds_since(index_started);
  const double total_load_s = seconds_since(load_started);
  std::printf("reports at %lld sessions: loaded the store in %.1f s (%.0f sessions/s, in-process batches of %lld), "
              "the plain table in %.1f s\n",
              static_cast<long long>(sessions), total_load_s - plain_load_s,
              static_cast<double>(sessions) / (total_load_s - plain_load_s), static_cast<long long>(kLoadBatch),
              plain_load_s);

  ReportApi api(**store);
  const int64_t now = kEnd;
  const int64_t from32 = floor_to(now - 32 * kDayMs, kMinuteMs), to_now = floor_to(now, kMinuteMs) + kMinuteMs;
  auto require_ok = [](const ApiResponse& r) {
    if (r.status != 200) std::printf("  query failed: %s\n", r.body.substr(0, 300).c_str());
  };
  auto raw = [&](const std::string& sql, std::initializer_list<int64_t> params) {
    Statement s(plain->get(), sql);
    int i = 1;
    for (int64_t p : params) s.bind(i++, p);
    int64_t rows = 0;
    while (s.step()) ++rows;
    if (s.failed()) std::printf("  baseline failed: %s\n", s.error().c_str());
    return rows;
  };
  struct Row {
    const char* name;
    double collector_ms, baseline_ms;
  };
  std::vector<Row> rows;

  rows.push_back({"events by stream, 32 days (sessions, views, viewtime, bytes_out)",
                  median_ms([&] { require_ok(api.events("dimensions=stream&metrics=sessions,views,viewtime,bytes_out", now)); }),
                  median_ms([&] {
                    raw("SELECT stream, count(*), sum(type = 'play' AND started_at >= ?1), "
                        "sum(min(end_t, ?2) - max(started_at, ?1)), sum(bytes_out) FROM plain "
                        "WHERE started_at < ?2 AND end_t >= ?1 GROUP BY stream",
                        {from32, to_now});
                  })});
  const int64_t day_from = floor_to(now - kDayMs, kHourMs);
  rows.push_back(
      {"timeseries ccu, last 24 h, 1 h buckets",
       median_ms([&] {
         require_ok(api.timeseries("metrics=ccu&bucket=1h&from=" + std::to_string(now - kDayMs) + "&to=" +
                                       std::to_string(now - 1),
                                   now));
       }),
       median_ms([&] {
         Statement s(plain->get(), "SELECT started_at, end_t FROM plain WHERE started_at >= ?1 AND started_at < ?2 "
                                   "AND end_t >= ?3");
         s.bind(1, day_from - 4 * kHourMs).bind(2, now).bind(3, day_from);
         std::vector<OpenInterval> open;
         while (s.step()) open.push_back({s.int64(0), s.int64(1)});
         (void)max_concurrency(open, day_from, kHourMs, 24);
       })});
  const int64_t month = 1'793'491'200'000;  // 2026-11-01
  rows.push_back({"top 10 streams by bytes_out, this month",
                  median_ms([&] { require_ok(api.top("by=bytes_out&of=stream&month=2026-11", now)); }),
                  median_ms([&] {
                    raw("SELECT stream, sum(bytes_out) AS b FROM plain WHERE started_at < ?2 AND end_t >= ?1 "
                        "GROUP BY stream ORDER BY b DESC LIMIT 10",
                        {month, now});
                  })});
  rows.push_back({"month-to-date usage (3 periods)",
                  median_ms([&] { require_ok(api.month_to_date("at=" + std::to_string(now - 1), now)); }),
                  median_ms([&] {
                    for (auto [f, t] : {std::pair{month, now}, std::pair{month - 31 * kDayMs, month - 25 * kDayMs},
                                        std::pair{month - 31 * kDayMs, month}})
                      raw("SELECT type, sum(bytes_out), sum(bytes_in) FROM plain WHERE started_at < ?2 AND "
                          "end_t >= ?1 GROUP BY type",
                          {f, t});
                  })});
  // Same data, same answer: sessions and views per stream from both sides.
  {
    const auto body = nlohmann::json::parse(api.events("dimensions=stream&metrics=sessions,views", now).body);
    std::map<std::string, std::pair<int64_t, int64_t>> collector_counts, plain_counts;
    for (const auto& item : body.at("data"))
      collector_counts[item.at("dimensions").at("stream").get<std::string>()] = {
          item.at("totals").at("sessions").get<int64_t>(), item.at("totals").at("views").get<int64_t>()};
    Statement s(plain->get(), "SELECT stream, count(*), sum(type = 'play' AND started_at >= ?1) FROM plain "
                              "WHERE started_at < ?2 AND end_t >= ?1 GROUP BY stream");
    s.bind(1, from32).bind(2, to_now);
    while (s.step()) plain_counts[s.text(0)] = {s.int64(1), s.int64(2)};
    std::printf("  check: sessions and views per stream %s the plain GROUP BY (%zu streams)\n",
                collector_counts == plain_counts ? "equal" : "DIFFER FROM", plain_counts.size());
  }
  for (const Row& r : rows)
    std::printf("  %-66s collector %8.2f ms   plain GROUP BY %8.2f ms   ratio %.3f\n", r.name, r.collector_ms,
                r.baseline_ms, r.collector_ms / r.baseline_ms);
  std::printf("  (aim: every report <= 100 ms at 10M sessions)\n\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows while a long run goes on
  std::vector<int64_t> sizes{1'000'000, 10'000'000};
  int64_t ingest_records = 400'000;
  int connections = 4;
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "streamtally-collector-bench";
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--keep") {
      keep = true;
      continue;
    }
    if (i + 1 >= argc) break;
    const std::string value = argv[++i];
    if (flag == "--sessions") {
      sizes.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stoll(item));
    } else if (flag == "--ingest-records") {
      ingest_records = std::stoll(value);
    } else if (flag == "--connections") {
      connections = std::stoi(value);
    } else if (flag == "--dir") {
      dir = value;
    } else if (flag == "--store" && value == "clickhouse") {
      clickhouse_server = std::make_unique<test::ClickHouseServer>();
      if (!clickhouse_server->started()) {
        std::printf("clickhouse-server did not start: %s\n", clickhouse_server->log().c_str());
        return 1;
      }
    } else if (flag == "--store" && value != "sqlite") {
      std::printf("--store: sqlite or clickhouse, got %s\n", value.c_str());
      return 2;
    }
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::printf("collector_bench on %u hardware threads, files in %s, store: %s\n\n", std::thread::hardware_concurrency(),
              dir.c_str(), clickhouse_server ? "ClickHouse (a clickhouse-server on 127.0.0.1)" : "SQLite");
  if (ingest_records > 0) bench_ingest(dir, ingest_records, connections);
  for (int64_t n : sizes) bench_reports(dir, n);
  if (keep)
    std::printf("stores kept in %s\n", dir.c_str());
  else
    std::filesystem::remove_all(dir);
  return 0;
}
