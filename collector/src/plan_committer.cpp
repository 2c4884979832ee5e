#include "plan_committer.hpp"

#include <pthread.h>

namespace streamtally::collector {

PlanCommitter::PlanCommitter(Commit commit) : commit_(std::move(commit)), thread_([this] { loop(); }) {}

PlanCommitter::~PlanCommitter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

std::optional<PlanCommitter::Done> PlanCommitter::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !in_hand_ || outcome_; });
  if (!in_hand_) return std::nullopt;
  Done done{std::move(in_hand_), std::move(*outcome_)};
  in_hand_.reset(), outcome_.reset();
  return done;
}

void PlanCommitter::start(std::shared_ptr<ApplyPlan> plan) {
  {
    std::lock_guard lock(mutex_);
    in_hand_ = std::move(plan);
    outcome_.reset();
  }
  changed_.notify_all();
}

void PlanCommitter::loop() {
  pthread_setname_np(pthread_self(), "st-writer");  // in top -H, perf, gdb
  std::unique_lock lock(mutex_);
  for (;;) {
    // A plan in hand is done before stopping: the destructor runs after the last wait().
    changed_.wait(lock, [&] { return (in_hand_ && !outcome_) || stopping_; });
    if (!in_hand_ || outcome_) return;
    const std::shared_ptr<ApplyPlan> plan = in_hand_;
    lock.unlock();
    Status status = commit_(*plan);
    lock.lock();
    outcome_ = std::move(status);
    changed_.notify_all();
  }
}

}  // namespace streamtally::collector
