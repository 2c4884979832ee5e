// Wall-clock milliseconds since the epoch (UTC): the time base of every record.
#pragma once

#include <chrono>
#include <cstdint>

namespace streamtally {

inline int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace streamtally
