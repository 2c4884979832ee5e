// RecentPoints: the last few points of a session's update chain before its latest, as
// far as the applier knows them (session_cache.hpp). A late update that falls among
// them (batches acknowledged out of order arrive a few updates late) is attributed by
// cutting the one interval it falls in, without reading the chain: by attribution.hpp a
// session's contribution is a sum over the intervals between consecutive points, so
// only that interval changes.
//
// The points are in seq order. The first may be the session's start (seq INT64_MIN, at
// started_at, no bytes): then they are the whole chain before the latest. Empty when
// nothing is known (a session read from its row).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "attribution.hpp"

namespace streamtally::collector {

class RecentPoints {
 public:
  static constexpr std::size_t kCapacity = 3;

  RecentPoints() = default;
  // A session whose chain is `before_latest` and then its latest point.
  RecentPoints(int64_t started_at, std::span<const UpdatePoint> before_latest);

  // For a late seq (below the latest): the index of the known point just below it (the
  // interval from there to the next known point, or to the latest, holds it); nullopt
  // when no known point is below it, or one holds it (then the chain decides).
  std::optional<std::size_t> just_below(int64_t seq) const;
  const UpdatePoint& operator[](std::size_t i) const { return points_[i]; }
  std::size_t size() const { return size_; }

  // A point that is now in the chain before the latest, above the first known point:
  // kept in seq order; the first known one goes when there is no room.
  void add(const UpdatePoint& p);

 private:
  std::array<UpdatePoint, kCapacity> points_{};
  uint8_t size_ = 0;
};

}  // namespace streamtally::collector
