#include "attribution.hpp"

#include <algorithm>

namespace streamtally::collector {
namespace {

// floor(a / b) for b > 0 on 128-bit products (bytes x milliseconds overflow 64 bits).
int64_t floor_div(__int128 a, __int128 b) {
  __int128 q = a / b;
  if (q * b > a) --q;
  return static_cast<int64_t>(q);
}

}  // namespace

void attribute_interval(int64_t from, int64_t to, int64_t delta_in, int64_t delta_out, int sign,
                        const MinuteSink& sink) {
  if (to <= from) {
    Counters c;
    c.bytes_in = sign * delta_in;
    c.bytes_out = sign * delta_out;
    c.viewtime_ms = sign * (to - from);
    if (!c.zero()) sink(floor_to(to, kMinuteMs), c);
    return;
  }
  const __int128 length = to - from;
  for (int64_t minute = floor_to(from, kMinuteMs); minute < to; minute += kMinuteMs) {
    const int64_t lo = std::max(from, minute);
    const int64_t hi = std::min(to, minute + kMinuteMs);
    Counters c;
    c.bytes_in = sign * (floor_div(static_cast<__int128>(delta_in) * (hi - from), length) -
                         floor_div(static_cast<__int128>(delta_in) * (lo - from), length));
    c.bytes_out = sign * (floor_div(static_cast<__int128>(delta_out) * (hi - from), length) -
                          floor_div(static_cast<__int128>(delta_out) * (lo - from), length));
    c.viewtime_ms = sign * (hi - lo);
    if (!c.zero()) sink(minute, c);
  }
}

int64_t session_end(const SessionShape& s) { return std::max(s.started_at, s.chain.back().t); }

void attribute_session(const SessionShape& s, int sign, const MinuteSink& sink) {
  Counters start;
  start.starts = sign;
  start.views = s.play ? sign : 0;
  sink(floor_to(s.started_at, kMinuteMs), start);
  int64_t previous_t = s.started_at, previous_in = 0, previous_out = 0;
  for (const UpdatePoint& p : s.chain) {
    attribute_interval(previous_t, p.t, p.bytes_in - previous_in, p.bytes_out - previous_out, sign, sink);
    previous_t = p.t, previous_in = p.bytes_in, previous_out = p.bytes_out;
  }
  Counters end;
  end.ends = sign;
  sink(floor_to(session_end(s), kMinuteMs), end);
}

}  // namespace streamtally::collector
