// Attribution of a session to time: how one session's updates become per-minute
// rollup counters. Shared by ingest (incremental deltas) and the scan engine of
// the query side (same numbers computed from the stored update chain).
//
// A session's update chain is every distinct seq seen, ordered by seq; each point
// has a time t = ended_at or updated_at, and cumulative bytes. The k-th interval
// runs from the previous point (started_at for the first) to t_k; its byte delta
// and its length (viewtime) are spread over the minutes it covers in proportion to
// time, with integer shares that sum exactly to the delta. An interval of zero or
// negative length puts everything in the minute of t_k. Because the result depends
// only on the chain, never on arrival order, re-sent or reordered updates produce
// the same rollups.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace streamtally::collector {

inline constexpr int64_t kMinuteMs = 60'000;
inline constexpr int64_t kHourMs = 3'600'000;
inline constexpr int64_t kDayMs = 86'400'000;

// Floor division that is also right for negative times.
inline int64_t floor_to(int64_t t, int64_t length) {
  const int64_t q = t / length;
  return (q * length > t ? q - 1 : q) * length;
}

struct UpdatePoint {
  int64_t seq = 0;
  int64_t t = 0;  // ended_at or updated_at
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
};

// The order of a chain: by seq.
inline bool seq_before(const UpdatePoint& a, const UpdatePoint& b) { return a.seq < b.seq; }

// Additive counters of one rollup cell (one bucket of one dimension set).
struct Counters {
  int64_t starts = 0;       // sessions started in the bucket
  int64_t views = 0;        // play sessions started in the bucket
  int64_t ends = 0;         // sessions whose last known instant is in the bucket
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
  int64_t viewtime_ms = 0;

  Counters& operator+=(const Counters& o) {
    starts += o.starts, views += o.views, ends += o.ends;
    bytes_in += o.bytes_in, bytes_out += o.bytes_out, viewtime_ms += o.viewtime_ms;
    return *this;
  }
  bool zero() const { return !starts && !views && !ends && !bytes_in && !bytes_out && !viewtime_ms; }
};

// Receives (minute start, counters) pieces; sign is already applied.
using MinuteSink = std::function<void(int64_t minute, const Counters&)>;

// The bytes and viewtime of one interval (from, to] with the given byte deltas.
void attribute_interval(int64_t from, int64_t to, int64_t delta_in, int64_t delta_out, int sign,
                        const MinuteSink& sink);

// A session as the rollups see it.
struct SessionShape {
  int64_t started_at = 0;
  bool play = false;
  std::vector<UpdatePoint> chain;  // sorted by seq, not empty
};

// The session's last known instant: its latest point, never before started_at.
int64_t session_end(const SessionShape& session);

// The whole contribution of a session: start/view at started_at, end at the last
// point, bytes and viewtime of every interval. sign = -1 removes it.
void attribute_session(const SessionShape& session, int sign, const MinuteSink& sink);

}  // namespace streamtally::collector
