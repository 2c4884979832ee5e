#include "recent_points.hpp"

#include <algorithm>

namespace streamtally::collector {

RecentPoints::RecentPoints(int64_t started_at, std::span<const UpdatePoint> before_latest) {
  if (before_latest.size() < kCapacity) points_[size_++] = UpdatePoint{INT64_MIN, started_at, 0, 0};
  for (const UpdatePoint& p : before_latest.last(std::min(before_latest.size(), kCapacity - size_)))
    points_[size_++] = p;
}

std::optional<std::size_t> RecentPoints::just_below(int64_t seq) const {
  std::size_t i = size_;
  while (i > 0 && points_[i - 1].seq > seq) --i;
  if (i == 0 || points_[i - 1].seq == seq) return std::nullopt;
  return i - 1;
}

void RecentPoints::add(const UpdatePoint& p) {
  const auto end = points_.begin() + size_;
  auto at = std::upper_bound(points_.begin(), end, p.seq,
                             [](int64_t seq, const UpdatePoint& q) { return seq < q.seq; });
  if (size_ == kCapacity) {  // no room: the first goes (p is above it)
    std::move(points_.begin() + 1, at, points_.begin());
    *(at - 1) = p;
    return;
  }
  std::move_backward(at, end, end + 1);
  *at = p;
  ++size_;
}

}  // namespace streamtally::collector
