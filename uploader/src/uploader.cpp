// The uploader thread: decides when to send, claims batches from the spool, hands
// them to the BatchSender and applies its verdict to the spool (ack / dead letter /
// release), backing off after failures. See uploader.hpp for the contract.
#include "streamtally/uploader.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "backoff.hpp"
#include "batch_sender.hpp"
#include "http_client.hpp"
#include "streamtally/clock.hpp"
#include "streamtally/log.hpp"
#include "streamtally/spool.hpp"

namespace streamtally {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using upload::Verdict;

namespace {

// A held batch is only retried under its own lease while the lease still covers a
// whole request with this much to spare; otherwise it goes back to the spool.
constexpr auto kLeaseMargin = 2s;
// The shortest idle wait when nothing is claimable, whatever flush_interval says:
// nudges wake the thread anyway, this only bounds how often it polls the spool.
constexpr auto kMinIdleWait = 100ms;

std::string ms_text(std::chrono::milliseconds ms) {
  if (ms < 10s) return std::to_string(ms.count()) + " ms";
  return std::to_string(ms.count() / 1000) + " s";
}

}  // namespace

struct Uploader::Impl {
  Impl(std::shared_ptr<Spool> spool_in, UploaderOptions options_in)
      : spool(std::move(spool_in)), options(std::move(options_in)) {
    options.batch_size = std::max<std::size_t>(options.batch_size, 1);
    // A lease shorter than one request would let another uploader claim rows that
    // are still in flight here.
    const auto min_lease = std::chrono::duration_cast<std::chrono::milliseconds>(
        options.request_timeout + options.connect_timeout + kLeaseMargin);
    if (options.lease < min_lease) options.lease = min_lease;
  }

  void run();
  // Sleeps until `until`; a stop always ends the sleep at its deadline, a drain
  // request or a nudge only when asked to.
  enum Wake : unsigned { OnStopOnly = 0, OnDrain = 1, OnNudge = 2 };
  void wait_until(SteadyClock::time_point until, unsigned wake_on);
  bool stop_due() const;  // caller holds mutex
  // Sends claimed batches until none is left worth sending now: Empty (nothing
  // claimable), NotDue (a short batch whose oldest record has not waited
  // flush_interval yet: released, due at not_due_until), Failed (backoff armed),
  // Stopped.
  enum class CycleEnd { Empty, NotDue, Failed, Stopped };
  CycleEnd send_cycle(std::vector<upload::BatchSender>& senders, bool flushing,
                      SteadyClock::time_point& not_due_until);
  // What a claim gave: a batch worth sending now, or why there is none (Empty, NotDue,
  // Failed — with the backoff armed only when asked to).
  struct Claim {
    std::optional<ClaimedBatch> batch;
    SteadyClock::time_point claimed_at{};
    CycleEnd end = CycleEnd::Empty;
    SteadyClock::time_point not_due_until{};
    std::string body;  // the batch compressed ahead of its POST; empty: not yet
  };
  Claim claim_next(bool flushing, bool arm_backoff_on_failure);
  // A batch whose POST is on the way, on one of the connections ("lanes").
  struct Flight {
    ClaimedBatch batch;
    SteadyClock::time_point claimed_at;
    upload::PendingDelivery delivery;
    std::size_t lane = 0;
    bool retry = false;  // the held batch, sent again under its lease
  };
  Flight launch(upload::BatchSender& sender, std::size_t lane, ClaimedBatch batch,
                SteadyClock::time_point claimed_at, std::string body, bool retry);
  // Applies a finished request's verdict to the spool. True when the uploader may go on.
  bool settle(Flight& flight, const upload::DeliveryResult& result, const upload::BatchSender& sender);
  // counts_as_retry: a POST failed (not the spool).
  void arm_backoff(const upload::DeliveryResult& result, const char* what, bool counts_as_retry);
  void give_back(ClaimedBatch& batch);
  // A drained spool is the quiet moment to delete the closed sessions the collector has
  // in full; in chunks, so a stop never waits for more than one.
  void sweep_delivered();
  void give_back_held_batch();

  const std::shared_ptr<Spool> spool;
  UploaderOptions options;

  std::mutex mutex;
  std::condition_variable wake;     // the thread sleeps on it
  std::condition_variable drained;  // drain() callers sleep on it
  bool running = false;
  bool stop_requested = false;
  bool nudged = false;
  SteadyClock::time_point stop_deadline{};
  uint64_t drain_requested = 0;
  // drain_requested when the latest claim began: an empty claim completes the drains
  // requested before it (a later one may concern records appended after it).
  uint64_t drain_seen_by_claim = 0;
  uint64_t drain_completed = 0;
  std::thread thread;

  // One connection per request in flight; created by start(), used by the thread.
  std::vector<std::unique_ptr<upload::HttpClient>> clients;
  std::optional<upload::Backoff> backoff;
  SteadyClock::time_point retry_at{};
  // A batch whose POST failed and that we retry under the same lease (same key).
  std::optional<ClaimedBatch> held;
  SteadyClock::time_point held_claimed_at{};
  bool failing = false;  // for "collector reachable again" logs
  bool failed_while_stopping = false;  // a stop does not retry what failed during it

  upload::WireCounters wire;
  std::atomic<uint64_t> batches_acked{0};
  std::atomic<uint64_t> batches_retried{0};
  std::atomic<uint64_t> batches_dead_lettered{0};
};

bool Uploader::Impl::stop_due() const { return stop_requested && SteadyClock::now() >= stop_deadline; }

void Uploader::Impl::wait_until(SteadyClock::time_point until, unsigned wake_on) {
  std::unique_lock lock(mutex);
  for (;;) {
    if (stop_due()) return;
    if ((wake_on & OnNudge) && (nudged || stop_requested)) return;
    if ((wake_on & OnDrain) && (drain_requested > drain_completed || stop_requested)) return;
    const auto limit = stop_requested ? std::min(until, stop_deadline) : until;
    if (SteadyClock::now() >= limit) return;
    wake.wait_until(lock, limit);
  }
}

void Uploader::Impl::arm_backoff(const upload::DeliveryResult& result, const char* what, bool counts_as_retry) {
  const auto delay = backoff->next_delay(result.retry_after);
  retry_at = SteadyClock::now() + delay;
  if (counts_as_retry) batches_retried.fetch_add(1, std::memory_order_relaxed);
  failing = true;
  {
    std::lock_guard lock(mutex);
    if (stop_requested) failed_while_stopping = true;
  }
  const LogLevel level = result.verdict == Verdict::Unauthorized ? LogLevel::Error : LogLevel::Warn;
  std::string message = std::string("streamtally uploader: ") + what + " failed: " + result.detail;
  if (result.verdict == Verdict::Unauthorized)
    message += " — the collector refuses the ingest token; check the collector token setting";
  message += "; retry #" + std::to_string(backoff->failures()) + " in " + ms_text(delay);
  if (result.retry_after) message += " (Retry-After " + ms_text(*result.retry_after) + ")";
  log(level, message);
}

void Uploader::Impl::give_back(ClaimedBatch& batch) {
  if (Status s = spool->release(batch.batch_id); !s.ok())
    log(LogLevel::Warn, "streamtally uploader: could not release batch " + batch.batch_id +
                            " (its lease will expire): " + s.error());
}

void Uploader::Impl::sweep_delivered() {
  constexpr std::size_t kChunk = 16384;
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (stop_requested) return;
    }
    auto swept = spool->sweep_delivered(kChunk);
    if (!swept.ok()) {
      log(LogLevel::Warn, "streamtally uploader: could not delete delivered sessions from the spool: " + swept.error());
      return;
    }
    if (*swept < kChunk) return;
  }
}

void Uploader::Impl::give_back_held_batch() {
  if (!held) return;
  give_back(*held);
  held.reset();
}

Uploader::Impl::Flight Uploader::Impl::launch(upload::BatchSender& sender, std::size_t lane, ClaimedBatch batch,
                                               SteadyClock::time_point claimed_at, std::string body, bool retry) {
  // Never let a request outlive the lease: another uploader could claim the rows.
  const auto lease_left = std::chrono::duration_cast<std::chrono::milliseconds>(
      claimed_at + options.lease - kLeaseMargin - SteadyClock::now());
  const auto timeout = std::max(1ms, std::min(options.request_timeout, lease_left));
  Flight flight{std::move(batch), claimed_at, {}, lane, retry};
  if (body.empty()) body = upload::BatchSender::compress(flight.batch.body());
  flight.delivery = sender.begin(flight.batch.batch_id, flight.batch.lines, timeout, std::move(body));
  return flight;
}

bool Uploader::Impl::settle(Flight& flight, const upload::DeliveryResult& result,
                            const upload::BatchSender& sender) {
  ClaimedBatch& batch = flight.batch;
  switch (result.verdict) {
    case Verdict::Delivered: {
      if (Status s = spool->ack(batch.batch_id); !s.ok()) {
        // Delivered but still in the spool: it will be sent again, harmlessly (the
        // collector keeps the highest seq per session). Back off from the spool.
        log(LogLevel::Error, "streamtally uploader: ack of batch " + batch.batch_id + " failed: " + s.error());
        upload::DeliveryResult spool_failure{Verdict::RetryLater, 0, std::nullopt, "spool ack: " + s.error()};
        arm_backoff(spool_failure, "acknowledging a batch", false);
        return false;
      }
      batches_acked.fetch_add(1, std::memory_order_relaxed);
      if (failing) log(LogLevel::Info, "streamtally uploader: the collector accepts batches again");
      failing = false;
      backoff->reset();
      return true;
    }
    case Verdict::Rejected: {
      log(LogLevel::Error, "streamtally uploader: the collector rejected batch " + batch.batch_id + " (" +
                               std::to_string(batch.lines.size()) + " records), moved to the dead letters: " +
                               result.detail);
      if (Status s = spool->dead_letter(batch, result.detail, static_cast<int>(result.status)); !s.ok())
        log(LogLevel::Error, "streamtally uploader: dead-lettering batch " + batch.batch_id + " failed: " + s.error());
      else
        batches_dead_lettered.fetch_add(1, std::memory_order_relaxed);
      return true;  // the rest goes on
    }
    case Verdict::Aborted:
      // stop() cut the request: the batch goes back for the next start.
      give_back(batch);
      return false;
    case Verdict::Unauthorized:
    case Verdict::RetryLater:
      // One batch is retried under its own lease (same key) after the backoff; others
      // that failed with it go back to the spool.
      if (held) {
        give_back(batch);
        return false;
      }
      arm_backoff(result, ("POST " + sender.batches_url()).c_str(), true);
      held = std::move(batch);
      held_claimed_at = flight.claimed_at;
      return false;
  }
  return false;
}

Uploader::Impl::Claim Uploader::Impl::claim_next(bool flushing, bool arm_backoff_on_failure) {
  // Claiming is also how we look at the spool: it costs one small transaction, where
  // counting the pending rows would scan them all.
  Claim c;
  c.claimed_at = SteadyClock::now();
  {
    std::lock_guard lock(mutex);
    drain_seen_by_claim = drain_requested;
  }
  auto claimed = spool->claim(options.batch_size, options.lease);
  if (!claimed.ok()) {
    if (arm_backoff_on_failure) {
      upload::DeliveryResult spool_failure{Verdict::RetryLater, 0, std::nullopt, "spool claim: " + claimed.error()};
      arm_backoff(spool_failure, "claiming a batch", false);
    }
    c.end = CycleEnd::Failed;
    return c;
  }
  if (!claimed->has_value()) {
    c.end = CycleEnd::Empty;
    return c;
  }
  ClaimedBatch& batch = **claimed;
  if (!flushing && batch.lines.size() < options.batch_size) {
    const int64_t due_in_ms = batch.oldest_created_ms + options.flush_interval.count() - now_ms();
    if (due_in_ms > 0) {
      // Not worth a request yet: give the short batch back and wait for more.
      give_back(batch);
      c.end = CycleEnd::NotDue;
      c.not_due_until = SteadyClock::now() + std::chrono::milliseconds(due_in_ms);
      return c;
    }
  }
  c.batch = std::move(batch);
  return c;
}

Uploader::Impl::CycleEnd Uploader::Impl::send_cycle(std::vector<upload::BatchSender>& senders, bool flushing,
                                                     SteadyClock::time_point& not_due_until) {
  // Up to one request per lane is on the way, and the next batch is claimed and
  // compressed meanwhile: the spool's work and the compression overlap the network and
  // the collector's work, and the collector always has a request to work on.
  std::deque<Flight> flights;
  std::vector<std::size_t> free_lanes;
  for (std::size_t lane = senders.size(); lane-- > 0;) free_lanes.push_back(lane);
  std::optional<Claim> ahead;
  std::optional<CycleEnd> end;  // set once no further batch is started: why
  bool failed = false;
  auto give_back_ahead = [&] {
    if (ahead && ahead->batch) give_back(*ahead->batch);
    ahead.reset();
  };

  for (;;) {
    // 1. Start batches while a lane is free and something is worth sending now.
    while (!end && !failed && !free_lanes.empty()) {
      {
        std::lock_guard lock(mutex);
        if (stop_due()) {
          end = CycleEnd::Stopped;
          break;
        }
      }
      ClaimedBatch batch;
      SteadyClock::time_point claimed_at;
      std::string body;
      bool retry = false;
      if (held) {
        // The retry of a failed batch goes alone, under its lease (same Idempotency-Key)
        // while that is long enough; a lane stays free for what follows it.
        if (!flights.empty()) break;
        if (SteadyClock::now() + options.request_timeout + options.connect_timeout + kLeaseMargin >=
            held_claimed_at + options.lease) {
          give_back_held_batch();
          continue;
        }
        batch = std::move(*held);
        claimed_at = held_claimed_at;
        held.reset();
        retry = true;
      } else {
        Claim c = ahead ? std::move(*ahead) : claim_next(flushing, true);
        ahead.reset();
        if (!c.batch) {
          if (c.end == CycleEnd::NotDue) not_due_until = c.not_due_until;
          end = c.end;
          break;
        }
        batch = std::move(*c.batch);
        claimed_at = c.claimed_at;
        body = std::move(c.body);
      }
      const std::size_t lane = free_lanes.back();
      free_lanes.pop_back();
      flights.push_back(launch(senders[lane], lane, std::move(batch), claimed_at, std::move(body), retry));
      if (retry) break;  // nothing else until the collector took it
    }
    if (flights.empty()) {
      give_back_ahead();
      if (failed) {
        std::lock_guard lock(mutex);
        return stop_requested && !held ? CycleEnd::Stopped : CycleEnd::Failed;
      }
      return end.value_or(CycleEnd::Empty);
    }

    // 2. While requests are on the way, claim and compress the next batch. A claim that
    //    fails now is simply made again, with its backoff, when it is due.
    const bool retrying = flights.front().retry;
    if (!end && !failed && !retrying && !held && !ahead) {
      Claim c = claim_next(flushing, false);
      if (c.batch) c.body = upload::BatchSender::compress(c.batch->body());
      if (c.end != CycleEnd::Failed) ahead = std::move(c);
    }

    // 3. The oldest request's answer; a failure stops new starts, those on the way end.
    Flight flight = std::move(flights.front());
    flights.pop_front();
    const upload::DeliveryResult result = senders[flight.lane].finish(flight.delivery);
    free_lanes.push_back(flight.lane);
    if (!settle(flight, result, senders[flight.lane])) failed = true;
  }
}

void Uploader::Impl::run() {
  std::vector<upload::BatchSender> senders;
  for (auto& client : clients) senders.emplace_back(*client, options.collector_url, options.token, wire);
  // How often nudges may make us look at the spool: a host nudges after every
  // append, and between looks the records only accumulate into fuller batches.
  const auto min_look_interval =
      std::max<std::chrono::milliseconds>(kMinIdleWait, options.flush_interval / 10);
  const auto idle_wait = std::max<std::chrono::milliseconds>(options.flush_interval, kMinIdleWait);
  SteadyClock::time_point last_look{};
  for (;;) {
    // 1. An armed backoff is honoured by everything: nudges, drains and stops. A stop
    //    ends without another try when its deadline falls inside the backoff or when
    //    a try already failed during the stop (the collector is not taking data now).
    if (SteadyClock::now() < retry_at) {
      {
        std::lock_guard lock(mutex);
        if (stop_requested && (failed_while_stopping || stop_deadline < retry_at)) break;
      }
      wait_until(retry_at, OnStopOnly);
      std::lock_guard lock(mutex);
      if (stop_requested && (stop_due() || failed_while_stopping || stop_deadline < retry_at)) break;
      if (SteadyClock::now() < retry_at) continue;
    }

    bool flushing;
    {
      std::lock_guard lock(mutex);
      if (stop_due()) break;
      nudged = false;
      flushing = stop_requested || drain_requested > drain_completed;
    }

    // 2. Send what is worth sending: full batches, short batches whose oldest record
    //    waited flush_interval, everything when flushing (drain, stop).
    SteadyClock::time_point sleep_until;
    last_look = SteadyClock::now();
    const CycleEnd end = send_cycle(senders, flushing, sleep_until);
    if (end == CycleEnd::Stopped) break;
    if (end == CycleEnd::Failed) continue;  // the backoff wait comes first
    if (end == CycleEnd::Empty) {
      {
        std::lock_guard lock(mutex);
        drain_completed = std::max(drain_completed, drain_seen_by_claim);
        drained.notify_all();
        if (stop_requested) break;
      }
      sweep_delivered();
      // Nothing claimable now (others may hold leases; other processes may append
      // without nudging us): look again after a while.
      sleep_until = SteadyClock::now() + idle_wait;
    }

    // 3. Sleep until then, a drain, a stop, or a nudge — nudges no more often than
    //    min_look_interval.
    wait_until(sleep_until, OnDrain | OnNudge);
    const auto earliest = last_look + min_look_interval;
    if (SteadyClock::now() < std::min(earliest, sleep_until)) wait_until(std::min(earliest, sleep_until), OnDrain);
  }
  give_back_held_batch();
  std::lock_guard lock(mutex);
  drained.notify_all();
}

Uploader::Uploader(std::shared_ptr<Spool> spool, UploaderOptions options)
    : impl_(std::make_unique<Impl>(std::move(spool), std::move(options))) {}

Uploader::~Uploader() { stop(0ms); }

void Uploader::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->running) return;
  upload::HttpClientOptions http;
  http.ca_file = impl_->options.ca_file;
  http.connect_timeout = impl_->options.connect_timeout;
  http.request_timeout = impl_->options.request_timeout;
  impl_->clients.clear();
  for (std::size_t i = 0; i < std::max<std::size_t>(impl_->options.max_in_flight, 1); ++i)
    impl_->clients.push_back(std::make_unique<upload::HttpClient>(http));
  impl_->backoff.emplace(impl_->options.backoff_base, impl_->options.backoff_cap, std::random_device{}());
  impl_->retry_at = {};
  impl_->stop_requested = false;
  impl_->failed_while_stopping = false;
  impl_->running = true;
  impl_->thread = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "st-uploader");  // in top -H, perf, gdb
    try {
      impl->run();
    } catch (const std::exception& e) {  // never let an exception end the host process
      log(LogLevel::Error, std::string("streamtally uploader: stopped by an internal error: ") + e.what());
    } catch (...) {
      log(LogLevel::Error, "streamtally uploader: stopped by an unknown internal error");
    }
  });
}

void Uploader::stop(std::chrono::milliseconds flush_timeout) {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->running) return;
    impl_->stop_requested = true;
    impl_->stop_deadline = SteadyClock::now() + std::max(flush_timeout, 0ms);
    for (auto& client : impl_->clients) client->abort_at(impl_->stop_deadline);
    impl_->wake.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  std::lock_guard lock(impl_->mutex);
  impl_->running = false;
  impl_->stop_requested = false;
  impl_->clients.clear();
  impl_->drained.notify_all();
}

void Uploader::nudge() {
  std::lock_guard lock(impl_->mutex);
  impl_->nudged = true;
  impl_->wake.notify_all();
}

bool Uploader::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  if (!impl_->running) return false;
  const uint64_t generation = ++impl_->drain_requested;
  impl_->wake.notify_all();
  return impl_->drained.wait_for(lock, timeout, [&] {
    return impl_->drain_completed >= generation || !impl_->running || impl_->stop_requested;
  }) && impl_->drain_completed >= generation;
}

UploaderCounters Uploader::counters() const {
  UploaderCounters c;
  c.batches_sent = impl_->wire.posts.load(std::memory_order_relaxed);
  c.batches_acked = impl_->batches_acked.load(std::memory_order_relaxed);
  c.batches_retried = impl_->batches_retried.load(std::memory_order_relaxed);
  c.batches_dead_lettered = impl_->batches_dead_lettered.load(std::memory_order_relaxed);
  c.records_uploaded = impl_->wire.records_delivered.load(std::memory_order_relaxed);
  c.bytes_uploaded = impl_->wire.body_bytes.load(std::memory_order_relaxed);
  return c;
}

}  // namespace streamtally
