// PlanCommitter: the second stage of the inbox applier. A thread of its own (st-writer)
// writes and commits one ApplyPlan (apply_plan.hpp) at a time, while the applier plans
// the next; the applier hands it a plan only once the one before is done, so a plan
// never commits after one that failed before it.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "apply_plan.hpp"
#include "store.hpp"

namespace streamtally::collector {

class PlanCommitter {
 public:
  // Writes and commits a plan, or rolls it back.
  using Commit = std::function<Status(const ApplyPlan&)>;
  explicit PlanCommitter(Commit commit);
  ~PlanCommitter();  // after the plan in hand is done

  struct Done {
    std::shared_ptr<ApplyPlan> plan;
    Status status;
  };
  // Waits until the plan in hand is done: it, with its outcome (none when none was in hand).
  std::optional<Done> wait();
  // Hands a plan over; none may be in hand (wait() first).
  void start(std::shared_ptr<ApplyPlan> plan);
  // The plan handed over and not waited for yet, being written or written (nullptr:
  // none). Only for the thread that hands plans over: only it changes which is in hand.
  const ApplyPlan* in_hand() const { return in_hand_.get(); }

 private:
  void loop();

  Commit commit_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::shared_ptr<ApplyPlan> in_hand_;
  std::optional<Status> outcome_;  // of in_hand_, once done
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace streamtally::collector
