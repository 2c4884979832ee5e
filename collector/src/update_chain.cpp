#include "update_chain.hpp"

#include <algorithm>

#include "varint.hpp"

namespace streamtally::collector {
namespace {

constexpr unsigned char kFormat = 1;

}  // namespace

void encode_chain_points(std::span<const UpdatePoint> points, std::string& out) {
  out.push_back(static_cast<char>(kFormat));
  put_varint(out, points.size());
  UpdatePoint before{};  // the first point's differences from zero are its values
  for (const UpdatePoint& p : points) {
    put_signed(out, wrapping_difference(p.seq, before.seq));
    put_signed(out, wrapping_difference(p.t, before.t));
    put_signed(out, wrapping_difference(p.bytes_in, before.bytes_in));
    put_signed(out, wrapping_difference(p.bytes_out, before.bytes_out));
    before = p;
  }
}

Status decode_chain_points(std::string_view blob, std::vector<UpdatePoint>& out) {
  if (blob.empty() || static_cast<unsigned char>(blob[0]) != kFormat)
    return Error{"update chain: unknown format " + (blob.empty() ? std::string("(empty)") : std::to_string(+blob[0]))};
  VarintReader in(blob.substr(1));
  const uint64_t count = in.varint();
  if (in.error()) return Error{std::string("update chain: ") + in.error()};
  // A point takes at least 4 bytes: a larger count is damage, not an allocation to make.
  if (count > blob.size() / 4) return Error{"update chain: point count " + std::to_string(count) + " exceeds its size"};
  out.reserve(out.size() + count);
  UpdatePoint p{};
  for (uint64_t i = 0; i < count; ++i) {
    p.seq = wrapping_sum(p.seq, in.signed_varint());
    p.t = wrapping_sum(p.t, in.signed_varint());
    p.bytes_in = wrapping_sum(p.bytes_in, in.signed_varint());
    p.bytes_out = wrapping_sum(p.bytes_out, in.signed_varint());
    if (in.error()) return Error{std::string("update chain: ") + in.error()};
    out.push_back(p);
  }
  if (!in.at_end()) return Error{"update chain: bytes after the last point"};
  return Status::Ok();
}

bool chain_holds(const std::vector<UpdatePoint>& chain, int64_t seq) {
  return std::binary_search(chain.begin(), chain.end(), UpdatePoint{seq, 0, 0, 0}, seq_before);
}

Status write_chain_row(Statement& insert, int64_t session, std::span<const UpdatePoint> points, std::string& buffer) {
  buffer.clear();
  encode_chain_points(points, buffer);
  return insert.bind(1, session).bind(2, points.front().seq).bind_blob(3, buffer.data(), buffer.size()).run_and_reset();
}

Status read_chain(Statement& select_points, int64_t session, std::vector<UpdatePoint>& chain) {
  chain.clear();
  Status decoded = Status::Ok();
  Status st = select_points.bind(1, session).each_row([&](const Statement& q) {
    if (decoded) decoded = decode_chain_points(q.blob(0), chain);
  });
  if (!st) return st;
  if (!decoded) return Error{"session " + std::to_string(session) + ": " + decoded.error()};
  // Rows come in key order (their first seq); only a late update's row breaks the order.
  if (!std::is_sorted(chain.begin(), chain.end(), seq_before))
    std::sort(chain.begin(), chain.end(), seq_before);
  return Status::Ok();
}

}  // namespace streamtally::collector
