#include "ccu_sweep.hpp"

#include <algorithm>

namespace streamtally::collector {
namespace {

enum EventKind : int { kEnd = 0, kStart = 1, kZeroLengthEnd = 2 };

struct Event {
  int64_t t;
  int kind;
  bool operator<(const Event& o) const { return t != o.t ? t < o.t : kind < o.kind; }
};

}  // namespace

std::vector<int64_t> max_concurrency(const std::vector<OpenInterval>& sessions, int64_t first, int64_t length,
                                     int64_t count) {
  std::vector<Event> events;
  events.reserve(sessions.size() * 2);
  for (const OpenInterval& s : sessions) {
    events.push_back({s.start, kStart});
    events.push_back({s.end, s.end > s.start ? kEnd : kZeroLengthEnd});
  }
  std::sort(events.begin(), events.end());

  std::vector<int64_t> result(static_cast<std::size_t>(count), 0);
  std::size_t i = 0;
  int64_t open = 0;
  auto apply = [&](const Event& e) { open += e.kind == kStart ? 1 : -1; };
  for (int64_t b = 0; b < count; ++b) {
    const int64_t begin = first + b * length, end = begin + length;
    while (i < events.size() && events[i].t < begin) apply(events[i++]);
    while (i < events.size() && events[i].t == begin && events[i].kind == kEnd) apply(events[i++]);
    int64_t best = open;  // the sessions open at the bucket's first instant
    while (i < events.size() && events[i].t < end) {
      apply(events[i]);
      if (events[i].kind == kStart) best = std::max(best, open);
      ++i;
    }
    result[static_cast<std::size_t>(b)] = best;
  }
  return result;
}

}  // namespace streamtally::collector
