#include "inbox_codec.hpp"

#include <cstdint>

#include "varint.hpp"

namespace streamtally::collector {
namespace {

constexpr unsigned char kFormat = 1;
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
  out.push_back(static_cast<char>(kFormat));
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

Result<std::vector<IngestRecord>> decode_inbox_records(std::string_view row) {
  if (row.empty() || static_cast<unsigned char>(row[0]) != kFormat)
    return Error{"inbox row: unknown format " + (row.empty() ? std::string("(empty)") : std::to_string(+row[0]))};
  Reader in(row.substr(1));
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

}  // namespace streamtally::collector
