// `streamtally-spool upload`: runs the same Uploader the hosts embed, in the
// foreground, until SIGINT/SIGTERM — or with --once until the spool is drained.
#include <signal.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "streamtally/spool.hpp"

namespace streamtally::cli {
namespace {

// The signals that end an upload. They are blocked in every thread (the uploader's
// thread inherits the mask) and taken synchronously with sigtimedwait, so no
// handler runs inside libcurl or SQLite.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

bool stop_signal_within(std::chrono::milliseconds wait) {
  const sigset_t set = stop_signals();
  timespec ts{static_cast<time_t>(wait.count() / 1000), static_cast<long>(wait.count() % 1000) * 1000000L};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

void print_summary(const UploaderCounters& c, Spool& spool) {
  nlohmann::json out = {{"batches_sent", c.batches_sent},
                        {"batches_acked", c.batches_acked},
                        {"batches_retried", c.batches_retried},
                        {"batches_dead_lettered", c.batches_dead_lettered},
                        {"records_uploaded", c.records_uploaded},
                        {"bytes_uploaded", c.bytes_uploaded}};
  if (auto stats = spool.stats(); stats.ok()) {
    out["pending"] = stats->pending;
    out["dead_letters"] = stats->dead_letters;
  }
  std::cout << out.dump() << std::endl;
}

}  // namespace

int run_upload(const SpoolArgs& args, UploadArgs upload) {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  SpoolOptions options;
  options.path = args.path;
  auto opened = Spool::open(options);
  if (!opened.ok()) {
    std::cerr << "streamtally-spool: cannot open the spool " << args.path << ": " << opened.error() << "\n";
    return kExitFailure;
  }
  std::shared_ptr<Spool> spool = std::move(opened).value();

  Uploader uploader(spool, upload.uploader);
  uploader.start();
  int code = kExitOk;
  if (upload.once) {
    // Done when the spool holds nothing pending: drain() alone would also return
    // while rows are leased by an uploader that died, whose lease has not expired
    // yet; those must be sent too. Short slices keep signals noticed.
    const auto deadline = std::chrono::steady_clock::now() + upload.once_timeout;
    bool drained = false, interrupted = false;
    while (!drained && !interrupted && std::chrono::steady_clock::now() < deadline) {
      if (uploader.drain(std::chrono::milliseconds(200))) {
        auto stats = spool->stats();
        drained = stats.ok() && stats->pending == 0;
      }
      if (!drained) interrupted = stop_signal_within(std::chrono::milliseconds(50));
    }
    if (!drained) {
      std::cerr << "streamtally-spool: " << (interrupted ? "interrupted" : "timed out")
                << " before the spool was drained; the rest stays in the spool\n";
      code = kExitNotDrained;
    }
  } else {
    while (!stop_signal_within(std::chrono::milliseconds(1000))) {
    }
  }
  uploader.stop(upload.stop_timeout);
  print_summary(uploader.counters(), *spool);
  return code;
}

}  // namespace streamtally::cli
