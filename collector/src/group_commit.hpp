// GroupCommit: how both stores write ingest batches. A batch that arrives while a group
// is being written waits; the first caller to find no writer leads: it takes every
// waiting batch and writes them together (SQLite: one transaction and one fsync;
// ClickHouse: one INSERT, one part), then hands each caller its own outcome.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "store.hpp"

namespace streamtally::collector {

class GroupCommit {
 public:
  // Writes a group; one outcome per batch, in order. It may move the batches' records
  // away (their callers wait until the group is written).
  using WriteGroup = std::function<std::vector<Result<IngestOutcome>>(std::span<IngestBatch* const>)>;

  Result<IngestOutcome> submit(IngestBatch& batch, const WriteGroup& write);

 private:
  struct Pending {
    IngestBatch* batch;
    Result<IngestOutcome> outcome;
    bool done;
  };
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Pending*> queue_;  // batches waiting for the next group
  bool leading_ = false;         // a caller is writing a group
};

}  // namespace streamtally::collector
