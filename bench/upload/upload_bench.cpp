// upload_bench: how fast the Uploader empties a filled spool into a collector-like
// receiver on loopback, and how many gzip bytes a record costs on the wire.
//
// Baselines measured in the same run, on the same records:
//   decode  — the receiver's own work alone: gunzip + decode_record of every batch
//             (what one collector core can take in), no HTTP, no spool;
//   spool   — claim + ack of the same batches without sending them (the spool's
//             ceiling for any uploader).
// The upload figure includes both plus gzip, HTTP and the receiver's decoding, so
// the ratios say how much the network path costs on top of each.
//
// Each figure is the median of `runs` runs (each on a freshly filled spool), with the
// lowest and highest: on a shared 2-core machine one run moves by ±30 %.
//
// Usage: upload_bench [records=200000] [batch_size=500] [runs=5]
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "batch_sender.hpp"
#include "http_client.hpp"
#include "record_factory.hpp"
#include "streamtally/gzip.hpp"
#include "streamtally/record_codec.hpp"
#include "streamtally/spool.hpp"
#include "streamtally/uploader.hpp"
#include "streamtally/uuid.hpp"
#include "test_receiver.hpp"

using namespace streamtally;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::shared_ptr<Spool> filled_spool(const std::string& path, const std::vector<SessionRecord>& records) {
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  SpoolOptions options;
  options.path = path;
  options.max_bytes = 8ull << 30;
  auto spool = Spool::open(options);
  if (!spool.ok()) {
    std::fprintf(stderr, "spool: %s\n", spool.error().c_str());
    std::exit(1);
  }
  for (std::size_t i = 0; i < records.size(); i += 10000) {
    const std::size_t n = std::min<std::size_t>(10000, records.size() - i);
    if (!(*spool)->append(std::span<const SessionRecord>(records).subspan(i, n)).ok()) std::exit(1);
  }
  // A filled spool is one whose backlog is already on disk (it accumulated during an
  // outage): checkpoint the WAL and flush the file, so the fill's own writes are not
  // billed to the measurement that follows.
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "spool checkpoint: %s\n", sqlite3_errmsg(db));
    std::exit(1);
  }
  sqlite3_close(db);
  ::sync();
  return std::shared_ptr<Spool>(std::move(spool).value());
}

// Decodes every record of every request, keeps only the counts (a collector keeps its
// own copies; the test receiver's bookkeeping for the at-least-once tests is not part of
// what an uploader costs).
test::TestReceiver::Options lean_receiver() {
  test::TestReceiver::Options options;
  options.keep_records = false;
  return options;
}

// Median, lowest and highest of a figure measured several times.
struct Spread {
  std::vector<double> values;
  void add(double v) { values.push_back(v); }
  double median() const {
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    return sorted[sorted.size() / 2];
  }
  std::string text() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%10.0f records/s  (median of %zu, %.0f–%.0f)", median(), values.size(),
                  *std::min_element(values.begin(), values.end()), *std::max_element(values.begin(), values.end()));
    return buf;
  }
};

std::string batch_body(const std::vector<SessionRecord>& records, std::size_t begin, std::size_t n) {
  std::string body;
  for (std::size_t i = begin; i < begin + n; ++i) {
    encode_record(records[i], body);
    body += '\n';
  }
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::stoul(argv[1]) : 200000;
  const std::size_t batch_size = argc > 2 ? std::stoul(argv[2]) : 500;
  const std::size_t runs = std::max<std::size_t>(1, argc > 3 ? std::stoul(argv[3]) : 5);
  const auto dir = std::filesystem::temp_directory_path() / ("upload_bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::printf("upload_bench: %zu typical records (every SPEC field, ~1/3 with tags), batches of %zu, %zu runs\n",
              count, batch_size, runs);
  const auto records = test::varied_records(count);

  // Baseline 1: the receiver's decode rate, and gzip sizes at levels 1 and 6.
  std::vector<std::string> gz1;
  std::size_t raw_bytes = 0, gz1_bytes = 0, gz6_bytes = 0;
  double gz1_s = 0, gz6_s = 0;
  for (std::size_t i = 0; i < count; i += batch_size) {
    const std::string body = batch_body(records, i, std::min(batch_size, count - i));
    raw_bytes += body.size();
    auto t = Clock::now();
    gz1.push_back(gzip_compress(body, 1));
    gz1_s += seconds_since(t);
    gz1_bytes += gz1.back().size();
    t = Clock::now();
    gz6_bytes += gzip_compress(body, 6).size();
    gz6_s += seconds_since(t);
  }
  Spread decode, spool_rate, claim_rate, ack_rate, http, upload, upload_swept;
  std::size_t received = 0;
  bool all_drained = true;
  UploaderCounters c;
  for (std::size_t run = 0; run < runs; ++run) {
    // Baseline 1: the receiver's own work alone.
    auto t = Clock::now();
    std::size_t decoded = 0;
    for (const auto& gz : gz1) {
      auto text = gzip_decompress(gz, 1u << 30);
      std::size_t begin = 0;
      while (begin < text->size()) {
        const std::size_t end = text->find('\n', begin);
        decoded += decode_record(std::string_view(*text).substr(begin, end - begin)).ok();
        begin = end + 1;
      }
    }
    decode.add(static_cast<double>(decoded) / seconds_since(t));

    // Baseline 2: the spool's claim + ack rate.
    {
      auto spool = filled_spool((dir / "claim.db").string(), records);
      std::size_t claimed = 0;
      double claim_s = 0, ack_s = 0;
      for (;;) {
        auto t_claim = Clock::now();
        auto batch = spool->claim(batch_size, std::chrono::minutes(2));
        claim_s += seconds_since(t_claim);
        if (!batch.ok() || !batch->has_value()) break;
        claimed += (*batch)->lines.size();
        auto t_ack = Clock::now();
        if (!spool->ack((*batch)->batch_id).ok()) return 1;
        ack_s += seconds_since(t_ack);
      }
      spool_rate.add(static_cast<double>(claimed) / (claim_s + ack_s));
      claim_rate.add(static_cast<double>(claimed) / claim_s);
      ack_rate.add(static_cast<double>(claimed) / ack_s);
    }

    // The HTTP path alone: BatchSender (gzip + POST with keep-alive) -> receiver that
    // decodes every record; batches come from memory, not from the spool.
    {
      test::TestReceiver receiver(lean_receiver());
      std::vector<std::string> encoded;
      for (const SessionRecord& r : records) encoded.push_back(encode_record(r));
      std::vector<std::vector<std::string_view>> batches;
      for (std::size_t i = 0; i < count; i += batch_size)
        batches.emplace_back(encoded.begin() + static_cast<std::ptrdiff_t>(i),
                             encoded.begin() + static_cast<std::ptrdiff_t>(std::min(count, i + batch_size)));
      upload::HttpClient client(upload::HttpClientOptions{});
      upload::WireCounters wire;
      upload::BatchSender sender(client, receiver.url(), "bench", wire);
      t = Clock::now();
      for (const auto& batch : batches)
        if (sender.deliver(make_uuid_v4(), batch).verdict != upload::Verdict::Delivered) return 1;
      http.add(static_cast<double>(wire.records_delivered.load()) / seconds_since(t));
    }

    // The measurement: Uploader -> HTTP on loopback -> receiver decoding every record.
    test::TestReceiver receiver(lean_receiver());
    auto spool = filled_spool((dir / "upload.db").string(), records);
    UploaderOptions options;
    options.collector_url = receiver.url();
    options.token = "bench";
    options.batch_size = batch_size;
    Uploader uploader(spool, options);
    t = Clock::now();
    uploader.start();
    all_drained = uploader.drain(std::chrono::minutes(10)) && all_drained;
    const double upload_s = seconds_since(t);
    uploader.stop(std::chrono::seconds(5));
    // Delivered closed sessions leave the spool file in bulk once it is drained (the
    // uploader's sweep): part of what a drained backlog costs, timed apart.
    for (;;) {
      auto swept = spool->sweep_delivered(1u << 20);
      if (!swept.ok() || *swept == 0) break;
    }
    const double swept_s = seconds_since(t);
    c = uploader.counters();
    received = 0;
    for (const auto& request : receiver.requests()) received += request.decode_error.empty() ? request.record_count : 0;
    if (received != count) all_drained = false;
    upload.add(static_cast<double>(c.records_uploaded) / upload_s);
    upload_swept.add(static_cast<double>(c.records_uploaded) / swept_s);
  }

  std::printf("  baseline decode  : %s  (gunzip + decode_record, one core, no HTTP)\n", decode.text().c_str());
  std::printf("  baseline spool   : %s  (claim + ack, no HTTP; claim %.0f/s, ack %.0f/s)\n", spool_rate.text().c_str(),
              claim_rate.median(), ack_rate.median());
  std::printf("  http path only   : %s  (gzip + POST + receiver decode, batches from memory)\n", http.text().c_str());
  std::printf("  upload           : %s  (%llu batches a run, every record decoded by the receiver%s)\n",
              upload.text().c_str(), static_cast<unsigned long long>(c.batches_acked),
              all_drained ? "" : "; NOT DRAINED in some run");
  std::printf("  upload + sweep   : %s  (until the delivered sessions also left the spool file)\n",
              upload_swept.text().c_str());
  std::printf("  ratio upload/decode = %.2f, upload/spool = %.2f, http path/decode = %.2f (medians)\n",
              upload.median() / decode.median(), upload.median() / spool_rate.median(),
              http.median() / decode.median());
  std::printf("  wire: %.1f gzip bytes/record (raw NDJSON %.1f bytes/record, %.1fx smaller)\n",
              static_cast<double>(c.bytes_uploaded) / static_cast<double>(c.records_uploaded),
              static_cast<double>(raw_bytes) / static_cast<double>(count),
              static_cast<double>(raw_bytes) / static_cast<double>(c.bytes_uploaded));
  std::printf("  gzip level 1: %.1f bytes/record at %.0f MB/s; level 6: %.1f bytes/record at %.0f MB/s\n",
              static_cast<double>(gz1_bytes) / static_cast<double>(count), raw_bytes / gz1_s / 1e6,
              static_cast<double>(gz6_bytes) / static_cast<double>(count), raw_bytes / gz6_s / 1e6);
  std::filesystem::remove_all(dir);
  return all_drained ? 0 : 1;
}
