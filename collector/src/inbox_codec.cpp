#include "inbox_codec.hpp"

#include <cstdint>

#include "batch_decoder.hpp"
#include "varint.hpp"

namespace streamtally::collector {
namespace {

constexpr unsigned char kRecordsForm = 1, kGzipForm = 2;
// One byte per string length, number and enum of a record with every string empty.
constexpr std::size_t kMinRecordBytes = 24;

// Bit flags of the optional fields.
constexpr unsigned kHasUserId = 1, kHasToken = 2, kHasEndedAt = 4;

// A time as its distance from started_at (small), in wrap-around arithmetic so that no
// pair of values can overflow.
int64_t offset(int64_t t, int64_t base) { return wrapping_difference(t, base); }
int64_t from_offset(int64_t delta, int64_t base) { return wrapping_sum(base, delta); }
void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// The inbox row's strings and enums on top of the varints.
class Reader : public VarintReader {
 public:
  using VarintReader::VarintReader;

  std::string string() { return std::string(bytes(varint())); }
  template <class Enum>
  Enum enumeration(Enum last) {
    const uint64_t v = varint();
    if (v > static_cast<uint64_t>(last)) return fail("an enum value is out of range"), last;
    return static_cast<Enum>(v);
  }
};

}  // namespace

void encode_inbox_records(const std::vector<const IngestRecord*>& records, std::string& out) {
  out.push_back(static_cast<char>(kRecordsForm));
  put_varint(out, records.size());
  for (const IngestRecord* in : records) {
    const SessionRecord& r = in->record;
    put_string(out, r.server_id);
    put_string(out, r.host);
    put_string(out, r.session_id);
    put_signed(out, r.seq);
    put_varint(out, static_cast<uint64_t>(r.state));
    put_varint(out, static_cast<uint64_t>(r.type));
    put_varint(out, static_cast<uint64_t>(r.protocol));
    put_string(out, r.stream);
    put_string(out, r.client_ip);
    put_string(out, r.user_agent);
    put_string(out, r.referer);
    put_varint(out, (r.user_id ? kHasUserId : 0) | (r.token ? kHasToken : 0) | (r.ended_at ? kHasEndedAt : 0));
    if (r.user_id) put_string(out, *r.user_id);
    if (r.token) put_string(out, *r.token);
    put_signed(out, r.started_at);
    put_signed(out, offset(r.updated_at, r.started_at));
    if (r.ended_at) put_signed(out, offset(*r.ended_at, r.started_at));
    put_varint(out, r.bytes_in);
    put_varint(out, r.bytes_out);
    put_varint(out, static_cast<uint64_t>(r.end_reason));
    put_varint(out, r.tags.size());
    for (const auto& [key, value] : r.tags) put_string(out, key), put_string(out, value);
    put_string(out, in->country);
    put_string(out, in->device_type);
    put_string(out, in->os);
    put_string(out, in->browser);
    put_string(out, in->referer_domain);
  }
}

void encode_inbox_gzip_row(const IngestBatch& batch, const std::vector<const IngestRecord*>& fresh,
                           std::string& out) {
  out.push_back(static_cast<char>(kGzipForm));
  put_varint(out, batch.records.size());
  if (fresh.size() == batch.records.size()) {
    put_varint(out, 0);
  } else {
    std::string bitmap((batch.records.size() + 7) / 8, '\0');
    for (const IngestRecord* in : fresh) {
      const auto i = static_cast<std::size_t>(in - batch.records.data());
      bitmap[i / 8] = static_cast<char>(bitmap[i / 8] | (1 << (i % 8)));
    }
    put_string(out, bitmap);
  }
  out.append(batch.gzip_ndjson);
}

namespace {

Result<std::vector<IngestRecord>> decode_records_row(std::string_view row) {
  Reader in(row);
  const uint64_t count = in.varint();
  // Every record takes at least kMinRecordBytes: a larger count is damage (and must
  // not become a huge allocation).
  if (count > row.size() / kMinRecordBytes) return Error{"inbox row: record count " + std::to_string(count) + " exceeds its size"};
  std::vector<IngestRecord> records(count);
  for (IngestRecord& out : records) {
    SessionRecord& r = out.record;
    r.server_id = in.string();
    r.host = in.string();
    r.session_id = in.string();
    r.seq = in.signed_varint();
    r.state = in.enumeration(SessionState::Closed);
    r.type = in.enumeration(SessionType::Publish);
    r.protocol = in.enumeration(Protocol::Other);
    r.stream = in.string();
    r.client_ip = in.string();
    r.user_agent = in.string();
    r.referer = in.string();
    const uint64_t flags = in.varint();
    if (flags & kHasUserId) r.user_id = in.string();
    if (flags & kHasToken) r.token = in.string();
    r.started_at = in.signed_varint();
    r.updated_at = from_offset(in.signed_varint(), r.started_at);
    if (flags & kHasEndedAt) r.ended_at = from_offset(in.signed_varint(), r.started_at);
    r.bytes_in = in.varint();
    r.bytes_out = in.varint();
    r.end_reason = in.enumeration(EndReason::Recovered);
    for (uint64_t tags = in.varint(); tags > 0 && !in.error(); --tags) {
      std::string key = in.string();
      r.tags[std::move(key)] = in.string();
    }
    out.country = in.string();
    out.device_type = in.string();
    out.os = in.string();
    out.browser = in.string();
    out.referer_domain = in.string();
    if (in.error()) break;
  }
  if (in.error()) return Error{std::string("inbox row: ") + in.error()};
  if (!in.at_end()) return Error{"inbox row: bytes after the last record"};
  return records;
}

Result<std::vector<IngestRecord>> decode_gzip_row(std::string_view row, const EnrichFn& enrich) {
  Reader in(row);
  const uint64_t count = in.varint();
  const std::string_view bitmap = in.bytes(in.varint());
  if (in.error()) return Error{std::string("inbox row: ") + in.error()};
  if (!bitmap.empty() && bitmap.size() != (count + 7) / 8)
    return Error{"inbox row: the bitmap does not fit " + std::to_string(count) + " records"};
  // Accepted once under the collector's limits: nothing to bound again.
  const BatchLimits unbounded{SIZE_MAX, SIZE_MAX};
  IngestBatch batch;
  if (auto error = decode_batch("gzip", row.substr(row.size() - in.remaining()), unbounded, enrich, batch))
    return Error{"inbox row: " + error->message};
  if (batch.records.size() != count)
    return Error{"inbox row: " + std::to_string(batch.records.size()) + " records, " + std::to_string(count) +
                 " expected"};
  if (bitmap.empty()) return std::move(batch.records);
  std::vector<IngestRecord> admitted;
  for (std::size_t i = 0; i < batch.records.size(); ++i)
    if (static_cast<unsigned char>(bitmap[i / 8]) & (1 << (i % 8))) admitted.push_back(std::move(batch.records[i]));
  return admitted;
}

}  // namespace

Result<std::vector<IngestRecord>> decode_inbox_records(std::string_view row, const EnrichFn& enrich) {
  const int form = row.empty() ? -1 : static_cast<unsigned char>(row[0]);
  if (form == kRecordsForm) return decode_records_row(row.substr(1));
  if (form == kGzipForm) return decode_gzip_row(row.substr(1), enrich);
  return Error{"inbox row: unknown format " + (row.empty() ? std::string("(empty)") : std::to_string(form))};
}

}  // namespace streamtally::collector
