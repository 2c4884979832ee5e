#include "streamtally/context.hpp"

#include <filesystem>
#include <map>

#include "streamtally/clock.hpp"
#include "streamtally/log.hpp"
#include "streamtally/process_identity.hpp"
#include "streamtally/spool.hpp"
#include "streamtally/spool_writer.hpp"
#include "streamtally/uploader.hpp"

namespace streamtally {
namespace {

// Contexts of this process by (spool, collector): weak, so the last user's release
// stops the threads.
struct Registry {
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<Context>> contexts;
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string registry_key(const ContextConfig& c) {
  std::error_code ec;
  const auto path = std::filesystem::weakly_canonical(c.spool_path, ec);
  return (ec ? c.spool_path : path.string()) + '\n' + c.collector_url;
}

}  // namespace

struct Context::Impl {
  std::shared_ptr<Spool> spool;
  std::unique_ptr<SpoolWriter> writer;
  std::unique_ptr<Uploader> uploader;
};

Result<std::shared_ptr<Context>> Context::acquire(const ContextConfig& config) {
  if (config.spool_path.empty()) return Error{"spool path is required"};
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  const std::string key = registry_key(config);
  if (auto it = reg.contexts.find(key); it != reg.contexts.end())
    if (auto existing = it->second.lock()) return existing;
  std::shared_ptr<Context> ctx(new Context(config));
  if (Status s = ctx->start(); !s) return Error{s.error()};
  ctx->registry_key_ = key;
  reg.contexts[key] = ctx;
  return ctx;
}

void Context::release(std::shared_ptr<Context> context, std::chrono::milliseconds timeout, bool spool_now) {
  if (!context) return;
  bool last = false;
  {
    Registry& reg = registry();
    std::lock_guard lock(reg.mutex);
    if (context.use_count() == 1) {
      last = true;
      // Retire it: a later acquire() starts a fresh context instead of this stopping one.
      if (auto it = reg.contexts.find(context->registry_key_); it != reg.contexts.end()) {
        auto current = it->second.lock();
        if (!current || current == context) reg.contexts.erase(it);
      }
    }
  }
  if (last)
    context->shutdown(timeout);
  else if (spool_now)
    context->flush_to_spool(timeout);  // durable before the host may exit; no network wait
}

Context::Context(ContextConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>()) {}

Status Context::start() {
  SpoolOptions spool_options;
  spool_options.path = config_.spool_path;
  spool_options.max_bytes = config_.spool_max_bytes;
  auto spool = Spool::open(spool_options);
  if (!spool) return Error{spool.error()};
  impl_->spool = std::move(spool).value();
  server_id_ = config_.server_id.empty() ? impl_->spool->server_id() : config_.server_id;

  SessionTracker::Options tracker_options{server_id_, config_.host.empty() ? local_hostname() : config_.host,
                                          config_.interim};
  // The tracker's records go to the writer's queue; the writer exists before any
  // session can be opened (acquire() returns after start()).
  tracker_ = std::make_unique<SessionTracker>(tracker_options,
                                              [this](SessionRecord&& r) { impl_->writer->enqueue(std::move(r)); });

  if (!config_.collector_url.empty()) {
    UploaderOptions up;
    up.collector_url = config_.collector_url;
    up.token = config_.collector_token;
    up.ca_file = config_.ca_file;
    up.batch_size = config_.batch_size;
    up.flush_interval = config_.flush;
    impl_->uploader = std::make_unique<Uploader>(impl_->spool, up);
  }
  SpoolWriter::Hooks hooks;
  hooks.on_tick = [this](int64_t now) { return tracker_->emit_due_interims(now); };
  hooks.on_appended = [this](std::size_t) {
    if (impl_->uploader) impl_->uploader->nudge();
  };
  impl_->writer = std::make_unique<SpoolWriter>(impl_->spool, SpoolWriter::Options{}, std::move(hooks));
  if (impl_->uploader) impl_->uploader->start();
  return Status::Ok();
}

// Without an explicit shutdown (the last user was a session handle), stop without waiting
// for the network: what is not uploaded stays in the spool for the next start.
Context::~Context() { shutdown(std::chrono::milliseconds(0)); }

bool Context::flush_to_spool(std::chrono::milliseconds timeout) { return impl_->writer->flush(timeout); }

bool Context::flush(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!impl_->writer->flush(timeout)) return false;
  if (!impl_->uploader) return true;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return impl_->uploader->drain(std::max(left, std::chrono::milliseconds(0)));
}

void Context::shutdown(std::chrono::milliseconds timeout) {
  if (!impl_->writer) return;  // already shut down
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  tracker_->close_all(EndReason::Server);
  impl_->writer->stop();  // everything queued is in the spool now (or counted as lost)
  if (impl_->uploader) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    impl_->uploader->stop(std::max(left, std::chrono::milliseconds(0)));
  }
  impl_->uploader.reset();
  // The writer object stays (stopped) so late enqueues from hosts are harmless.
}

ContextStats Context::stats() {
  ContextStats s;
  s.sessions_open = tracker_->open_count();
  s.records_spooled = impl_->writer->records_spooled();
  s.records_dropped = impl_->writer->records_dropped();
  if (impl_->uploader) {
    const UploaderCounters c = impl_->uploader->counters();
    s.batches_sent = c.batches_sent;
    s.batches_acked = c.batches_acked;
    s.batches_retried = c.batches_retried;
    s.batches_dead_lettered = c.batches_dead_lettered;
    s.records_uploaded = c.records_uploaded;
    s.bytes_uploaded = c.bytes_uploaded;
  }
  if (auto spool = impl_->spool->stats()) {
    s.backlog_records = spool->pending;
    s.oldest_pending_age_ms = spool->oldest_pending_ms ? now_ms() - *spool->oldest_pending_ms : -1;
  }
  return s;
}

}  // namespace streamtally
