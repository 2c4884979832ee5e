#include "background_release.hpp"

#include <pthread.h>

namespace streamtally::collector {

BackgroundRelease::BackgroundRelease() : thread_([this] { run(); }) {}

BackgroundRelease::~BackgroundRelease() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_one();
  thread_.join();
}

void BackgroundRelease::release(std::shared_ptr<void> garbage) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(garbage));
  }
  queued_.notify_one();
}

void BackgroundRelease::run() {
  pthread_setname_np(pthread_self(), "st-release");  // in top -H, perf, gdb
  std::unique_lock lock(mutex_);
  for (;;) {
    queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to destroy
    std::vector<std::shared_ptr<void>> taken = std::move(queue_);
    queue_.clear();
    lock.unlock();
    taken.clear();  // the destructors run here, outside the lock
    lock.lock();
  }
}

}  // namespace streamtally::collector
