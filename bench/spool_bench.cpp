// spool_bench: records/s of Spool::append (encode + coalescing upsert + open-session
// snapshot, batched transactions) against a raw SQLite batched insert of the same
// encoded rows into a plain table, same pragmas (WAL, synchronous=NORMAL), same run;
// then the uploader's side: claim(500) + ack until the spool is drained.
//
//   spool_bench [records]      default 200000
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"

using namespace streamtally;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kBatch = 1000;

// A realistic workload: every session is opened, then closed one batch later.
std::vector<std::vector<SessionRecord>> make_batches(std::size_t records) {
  std::vector<std::vector<SessionRecord>> batches;
  const std::size_t half = kBatch / 2;
  for (std::size_t b = 0; b * kBatch < records; ++b) {
    std::vector<SessionRecord> batch;
    for (std::size_t i = 0; i < half; ++i) {
      SessionRecord r;
      r.server_id = "6f1c1c1e-3a52-4b8e-9d43-2f2b1f1e0a11";
      r.host = "edge-7.example.net";
      r.session_id = "sess-" + std::to_string(b * half + i);
      r.protocol = Protocol::Hls;
      r.stream = "live/channel-" + std::to_string(i % 40);
      r.client_ip = "203.0." + std::to_string(i % 256) + "." + std::to_string(b % 256);
      r.user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15";
      r.referer = "https://www.example.com/watch?v=" + std::to_string(i);
      r.token = "tok-" + std::to_string(i);
      r.started_at = 1'763'700'000'000 + static_cast<int64_t>(b * 1000);
      r.updated_at = r.started_at;
      batch.push_back(r);
      if (b > 0) {
        SessionRecord c = r;
        c.session_id = "sess-" + std::to_string((b - 1) * half + i);
        c.seq = 1;
        c.state = SessionState::Closed;
        c.updated_at += 60'000;
        c.ended_at = c.updated_at;
        c.end_reason = EndReason::Client;
        c.bytes_out = 48'000'000;
        batch.push_back(c);
      }
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double bench_raw(const std::string& path, const std::vector<std::vector<std::string>>& bodies,
                 const std::vector<std::vector<SessionRecord>>& batches, std::size_t& rows) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;"
               "CREATE TABLE records(id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL,"
               " closed INTEGER NOT NULL, created_ms INTEGER NOT NULL, body TEXT NOT NULL);",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO records(session_id, seq, closed, created_ms, body) VALUES(?,?,?,?,?)", -1, &ins,
                     nullptr);
  rows = 0;
  const auto t0 = Clock::now();
  for (std::size_t b = 0; b < batches.size(); ++b) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (std::size_t i = 0; i < batches[b].size(); ++i) {
      const SessionRecord& r = batches[b][i];
      sqlite3_bind_text(ins, 1, r.session_id.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_int64(ins, 2, r.seq);
      sqlite3_bind_int64(ins, 3, r.state == SessionState::Closed);
      sqlite3_bind_int64(ins, 4, r.updated_at);
      sqlite3_bind_text(ins, 5, bodies[b][i].data(), static_cast<int>(bodies[b][i].size()), SQLITE_STATIC);
      sqlite3_step(ins);
      sqlite3_reset(ins);
      ++rows;
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  const double s = seconds_since(t0);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t records = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200000;
  const auto dir = std::filesystem::temp_directory_path() / ("spool_bench." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto batches = make_batches(records);

  // Encoding alone (part of the spool's append path, not of the raw baseline).
  std::vector<std::vector<std::string>> bodies;
  auto t0 = Clock::now();
  std::size_t total = 0;
  for (const auto& batch : batches) {
    bodies.emplace_back();
    for (const auto& r : batch) bodies.back().push_back(encode_record(r)), ++total;
  }
  const double encode_s = seconds_since(t0);

  std::size_t raw_rows = 0;
  const double raw_s = bench_raw((dir / "raw.db").string(), bodies, batches, raw_rows);

  auto spool = Spool::open(SpoolOptions{(dir / "spool.db").string()});
  if (!spool) {
    std::fprintf(stderr, "spool: %s\n", spool.error().c_str());
    return 1;
  }
  t0 = Clock::now();
  for (const auto& batch : batches)
    if (auto r = spool.value()->append(batch); !r) {
      std::fprintf(stderr, "append: %s\n", r.error().c_str());
      return 1;
    }
  const double spool_s = seconds_since(t0);

  // Drain as the uploader does: claim 500, ack, until nothing is pending.
  t0 = Clock::now();
  std::size_t drained = 0;
  for (;;) {
    auto batch = spool.value()->claim(500, std::chrono::seconds(60));
    if (!batch || !batch->has_value()) break;
    drained += (*batch)->lines.size();
    if (!spool.value()->ack((*batch)->batch_id).ok()) return 1;
  }
  const double drain_s = seconds_since(t0);

  const double raw_rate = raw_rows / raw_s, spool_rate = total / spool_s, encode_rate = total / encode_s;
  std::printf("records                         %zu (batches of %zu; every session opened, then closed)\n", total,
              kBatch);
  std::printf("baseline raw SQLite insert      %10.0f records/s\n", raw_rate);
  std::printf("encode_record alone             %10.0f records/s\n", encode_rate);
  std::printf("Spool::append (encode included) %10.0f records/s\n", spool_rate);
  std::printf("ratio spool/raw                 %10.2f\n", spool_rate / raw_rate);
  std::printf("claim(500) + ack drain          %10.0f records/s (%zu pending records; ratio to raw insert %.2f)\n",
              drained / drain_s, drained, drained / drain_s / raw_rate);
  std::filesystem::remove_all(dir);
  return 0;
}
