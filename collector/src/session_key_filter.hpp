// SessionKeyFilter: a Bloom filter over the keys (session_key()) of every session the
// store holds or admission has taken. "Certainly not held" lets admission take the
// first record of a new session — the common case, seq 0 of a session it has not
// seen — without an indexed read of the store: that read cost ~10 µs (the admission
// connection's page cache starts over whenever the applier has committed), a tenth of
// the acknowledging side's CPU.
//
// Split-block layout (as Parquet's and Impala's filters): a key sets one bit in each
// of the eight words of one 64-byte block, so a test touches one cache line. A false
// positive only costs the read. The filter never forgets: a key stays held, which is
// right (sessions are never deleted) and at worst another false positive (a batch that
// failed after admission).
//
// Sized at open for twice the sessions held then (at least kMinSessions), 8 bits a
// session at that size: ~0.1 % false positives at open, ~3 % once the store has
// doubled. A store that outgrows it between restarts sees more false positives (more
// reads), never a wrong answer. 10M sessions: 32 MiB.
//
// add() and may_hold() may run on several threads at once (admission, and the thread
// that loads the store's keys at open): the words are atomic, every access relaxed —
// a bit once set stays set, and whoever reads it after the loader has finished learns
// that through the release/acquire of a flag of its own (Admission).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

namespace streamtally::collector {

class SessionKeyFilter {
 public:
  static constexpr uint64_t kMinSessions = 1'000'000;

  explicit SessionKeyFilter(uint64_t sessions);

  void add(std::string_view key);
  bool may_hold(std::string_view key) const;

 private:
  struct alignas(64) Block {
    std::atomic<uint64_t> words[8];
  };
  struct Probe {
    Block* block;
    uint64_t bits[8];
  };
  Probe probe(std::string_view key) const;

  std::size_t blocks_;  // a power of two
  std::unique_ptr<Block[]> data_;
};

}  // namespace streamtally::collector
