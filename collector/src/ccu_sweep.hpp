// Concurrent sessions: the highest number of sessions open at any instant of each
// bucket, by a sweep over starts and ends.
//
// A session is open at the instants start <= t < end. At equal times ends are
// processed before starts, so a viewer who reconnects at the instant the previous
// connection closed counts once. A zero-length session (start == end) is open at
// its single instant: it counts after its start and is removed after every start
// at that time.
#pragma once

#include <cstdint>
#include <vector>

namespace streamtally::collector {

struct OpenInterval {
  int64_t start = 0;
  int64_t end = 0;
};

// Buckets [first + i*length, first + (i+1)*length) for i < count.
std::vector<int64_t> max_concurrency(const std::vector<OpenInterval>& sessions, int64_t first, int64_t length,
                                     int64_t count);

}  // namespace streamtally::collector
