// BackgroundRelease: destroys what it is handed on a thread of its own ("st-release").
//
// The applier hands it each chunk it has applied: freeing ~30 000 decoded records (their
// strings, allocated by the HTTP threads) took ~6 % of the applier's time, and the
// applier is what bounds ingest until applied (docs/collector.md, "Performance").
// Thread-safe; the destructor destroys what is still queued, then joins the thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace streamtally::collector {

class BackgroundRelease {
 public:
  BackgroundRelease();
  ~BackgroundRelease();
  BackgroundRelease(const BackgroundRelease&) = delete;
  BackgroundRelease& operator=(const BackgroundRelease&) = delete;

  // The last owner of `garbage` goes: what it owns is destroyed on the release thread.
  void release(std::shared_ptr<void> garbage);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable queued_;
  std::vector<std::shared_ptr<void>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace streamtally::collector
