#include "session_key_filter.hpp"

#include <algorithm>
#include <bit>
#include <functional>

namespace streamtally::collector {
namespace {

// Odd constants that spread one 32-bit hash into eight bit positions (the salts of
// Parquet's split-block filter).
constexpr uint32_t kSalt[8] = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                               0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};
constexpr uint64_t kBitsPerSession = 8;

}  // namespace

SessionKeyFilter::SessionKeyFilter(uint64_t sessions)
    : blocks_(std::bit_ceil(std::max(sessions * 2, kMinSessions) * kBitsPerSession / (8 * sizeof(Block)))),
      data_(new Block[blocks_]) {
  for (std::size_t b = 0; b < blocks_; ++b)
    for (auto& w : data_[b].words) w.store(0, std::memory_order_relaxed);
}

SessionKeyFilter::Probe SessionKeyFilter::probe(std::string_view key) const {
  const uint64_t h = std::hash<std::string_view>{}(key);
  // The high half picks the block, the low half the bit in each of its words.
  Probe p{&data_[(h >> 32) & (blocks_ - 1)], {}};
  for (int i = 0; i < 8; ++i) p.bits[i] = uint64_t{1} << ((static_cast<uint32_t>(h) * kSalt[i]) >> 26);
  return p;
}

void SessionKeyFilter::add(std::string_view key) {
  const Probe p = probe(key);
  for (int i = 0; i < 8; ++i) p.block->words[i].fetch_or(p.bits[i], std::memory_order_relaxed);
}

bool SessionKeyFilter::may_hold(std::string_view key) const {
  const Probe p = probe(key);
  for (int i = 0; i < 8; ++i)
    if ((p.block->words[i].load(std::memory_order_relaxed) & p.bits[i]) == 0) return false;
  return true;
}

}  // namespace streamtally::collector
