// Rollup deltas of an apply transaction, summed in memory so it writes each
// touched (family, level, bucket, dims) cell once. Minutes are summed first (hash
// map, the hot path); hours and days are derived from them when the transaction writes them.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <utility>
#include <vector>

#include "attribution.hpp"
#include "sqlite_schema.hpp"

namespace streamtally::collector {

// The dimension ids of a session in every rollup family.
using FamilyIds = std::array<int64_t, kFamilyCount>;

class RollupDeltas {
 public:
  struct Cell {
    std::size_t family;
    int64_t bucket, dims;
    bool operator==(const Cell&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Cell& c) {
      return H::combine(std::move(h), c.family, c.bucket, c.dims);
    }
  };
  // Open addressing: a node-based map's lookups were a sixth of an apply.
  using Cells = absl::flat_hash_map<Cell, Counters>;

  void add(const FamilyIds& ids, int64_t minute, const Counters& c) {
    for (std::size_t f = 0; f < kFamilyCount; ++f) minutes_[{f, minute, ids[f]}] += c;
  }
  // A sink for attribute_session / attribute_interval into the cells of these ids. It
  // refers to `ids`, which must outlive it: it is meant as a call's argument. (Two
  // pointers fit std::function's own buffer; a copy of the ids took a malloc a call.)
  MinuteSink sink_for(const FamilyIds& ids) {
    return [this, &ids](int64_t minute, const Counters& c) { add(ids, minute, c); };
  }
  bool empty() const { return minutes_.empty(); }

  // The cells of every level, [level] -> cells in key order (B-tree friendly writes).
  std::array<std::vector<std::pair<Cell, Counters>>, kRollupLevelCount> levels() const {
    std::array<Cells, kRollupLevelCount> sums;  // hours and days; minutes are minutes_
    for (const auto& [cell, c] : minutes_)
      for (std::size_t level = 1; level < kRollupLevelCount; ++level)
        sums[level][{cell.family, floor_to(cell.bucket, kRollupLevelMs[level]), cell.dims}] += c;
    std::array<std::vector<std::pair<Cell, Counters>>, kRollupLevelCount> out;
    for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
      const Cells& cells = level == 0 ? minutes_ : sums[level];
      out[level].assign(cells.begin(), cells.end());
      std::sort(out[level].begin(), out[level].end(), [](const auto& a, const auto& b) {
        return std::tie(a.first.family, a.first.bucket, a.first.dims) <
               std::tie(b.first.family, b.first.bucket, b.first.dims);
      });
    }
    return out;
  }

 private:
  Cells minutes_;
};

}  // namespace streamtally::collector
