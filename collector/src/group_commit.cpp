#include "group_commit.hpp"

#include <exception>
#include <string>

namespace streamtally::collector {

Result<IngestOutcome> GroupCommit::submit(IngestBatch& batch, const WriteGroup& write) {
  Pending mine{&batch, Error{"not written"}, false};
  std::unique_lock lock(mutex_);
  queue_.push_back(&mine);
  changed_.wait(lock, [&] { return mine.done || !leading_; });
  if (mine.done) return std::move(mine.outcome);
  leading_ = true;
  std::vector<Pending*> group;
  group.swap(queue_);
  lock.unlock();
  std::vector<IngestBatch*> batches;
  for (const Pending* p : group) batches.push_back(p->batch);
  // Whatever fails, every waiting caller gets an answer and the next group a leader.
  std::vector<Result<IngestOutcome>> outcomes;
  std::string failure = "store: the group got no outcome for every batch";
  try {
    outcomes = write(batches);
  } catch (const std::exception& e) {
    failure = std::string("store: writing the group failed: ") + e.what();
  } catch (...) {
    failure = "store: writing the group failed";
  }
  lock.lock();
  for (std::size_t i = 0; i < group.size(); ++i) {
    group[i]->outcome = i < outcomes.size() && outcomes.size() == group.size() ? std::move(outcomes[i]) : Error{failure};
    group[i]->done = true;
  }
  leading_ = false;
  changed_.notify_all();
  return std::move(mine.outcome);
}

}  // namespace streamtally::collector
