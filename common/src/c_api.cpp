// The C API of streamtally.h over Context / SessionTracker. Every entry point
// catches everything: no C++ exception may reach a C host.
#include "streamtally.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "streamtally/context.hpp"
#include "streamtally/log.hpp"

using streamtally::Context;
using streamtally::EndReason;
using streamtally::Session;

struct streamtally_ctx_s {
  std::shared_ptr<Context> context;
  std::mutex mutex;
  std::vector<std::weak_ptr<Session>> sessions;  // opened through this handle
  std::size_t prune_at = 64;                     // prune when the list reaches this size
};

struct streamtally_session_s {
  std::shared_ptr<Context> context;  // keeps the tracker alive while the host holds the session
  std::shared_ptr<Session> session;
};

namespace {

std::string text(const char* s) { return s ? std::string(s) : std::string(); }

std::string text(streamtally_str_t s) {
  if (!s.data) return {};
  return std::string(s.data, s.len ? s.len : std::strlen(s.data));
}

std::optional<std::string> nullable(streamtally_str_t s) {
  if (!s.data) return std::nullopt;
  return text(s);
}

std::optional<streamtally::Protocol> protocol_of(streamtally_protocol_t p) {
  using P = streamtally::Protocol;
  switch (p) {
    case STREAMTALLY_PROTO_RTMP: return P::Rtmp;
    case STREAMTALLY_PROTO_HLS: return P::Hls;
    case STREAMTALLY_PROTO_DASH: return P::Dash;
    case STREAMTALLY_PROTO_HTTP_PROGRESSIVE: return P::HttpProgressive;
    case STREAMTALLY_PROTO_HTTP_FLV: return P::HttpFlv;
    case STREAMTALLY_PROTO_RTSP: return P::Rtsp;
    case STREAMTALLY_PROTO_SRT: return P::Srt;
    case STREAMTALLY_PROTO_WEBRTC: return P::WebRtc;
    case STREAMTALLY_PROTO_TCP: return P::Tcp;
    case STREAMTALLY_PROTO_UDP: return P::Udp;
    case STREAMTALLY_PROTO_OTHER: return P::Other;
  }
  return std::nullopt;
}

std::optional<EndReason> reason_of(streamtally_end_reason_t r) {
  switch (r) {
    case STREAMTALLY_END_CLIENT: return EndReason::Client;
    case STREAMTALLY_END_SERVER: return EndReason::Server;
    case STREAMTALLY_END_TIMEOUT: return EndReason::Timeout;
    case STREAMTALLY_END_ERROR: return EndReason::Error;
  }
  return std::nullopt;
}

template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return STREAMTALLY_ENOMEM;
  } catch (const std::exception& e) {
    streamtally::log(streamtally::LogLevel::Error, std::string("internal error: ") + e.what());
    return STREAMTALLY_EINTERNAL;
  } catch (...) {
    return STREAMTALLY_EINTERNAL;
  }
}

}  // namespace

extern "C" {

int streamtally_ctx_create(const streamtally_config_t* config, streamtally_ctx_t** out) {
  if (!config || !out || !config->spool_path || !*config->spool_path) return STREAMTALLY_EINVAL;
  *out = nullptr;
  return guarded([&] {
    if (config->log) streamtally::set_log_sink(config->log, config->log_user);
    streamtally::ContextConfig c;
    c.spool_path = config->spool_path;
    c.collector_url = text(config->collector_url);
    c.collector_token = text(config->collector_token);
    c.ca_file = text(config->ca_file);
    c.server_id = text(config->server_id);
    c.host = text(config->host);
    if (config->interim_ms) c.interim = std::chrono::milliseconds(config->interim_ms);
    if (config->batch_size) c.batch_size = config->batch_size;
    if (config->flush_ms) c.flush = std::chrono::milliseconds(config->flush_ms);
    if (config->spool_max_bytes) c.spool_max_bytes = config->spool_max_bytes;
    auto context = Context::acquire(c);
    if (!context) {
      streamtally::log(streamtally::LogLevel::Error, context.error());
      return static_cast<int>(STREAMTALLY_ESPOOL);
    }
    auto handle = std::make_unique<streamtally_ctx_s>();
    handle->context = std::move(context).value();
    *out = handle.release();
    return static_cast<int>(STREAMTALLY_OK);
  });
}

void streamtally_ctx_destroy(streamtally_ctx_t* ctx, uint64_t timeout_ms) {
  if (!ctx) return;
  guarded([&] {
    std::unique_ptr<streamtally_ctx_s> handle(ctx);
    {
      std::lock_guard lock(handle->mutex);
      for (auto& weak : handle->sessions)
        if (auto s = weak.lock()) handle->context->tracker().close(s, EndReason::Server);
    }
    // Every user's records reach the spool (local disk); only the last user waits for the
    // upload — whatever is not uploaded stays in the spool for the next start anyway.
    Context::release(std::move(handle->context), std::chrono::milliseconds(timeout_ms), /*spool_now=*/true);
    return 0;
  });
}

int streamtally_ctx_flush(streamtally_ctx_t* ctx, uint64_t timeout_ms) {
  if (!ctx) return STREAMTALLY_EINVAL;
  return guarded([&] {
    return ctx->context->flush(std::chrono::milliseconds(timeout_ms)) ? STREAMTALLY_OK : STREAMTALLY_ETIMEDOUT;
  });
}

int streamtally_ctx_stats(streamtally_ctx_t* ctx, streamtally_stats_t* out) {
  if (!ctx || !out) return STREAMTALLY_EINVAL;
  return guarded([&] {
    const streamtally::ContextStats s = ctx->context->stats();
    *out = streamtally_stats_t{s.sessions_open,   s.records_spooled,       s.records_dropped,
                               s.batches_sent,    s.batches_acked,         s.batches_retried,
                               s.batches_dead_lettered, s.records_uploaded, s.bytes_uploaded,
                               s.backlog_records, s.oldest_pending_age_ms};
    return static_cast<int>(STREAMTALLY_OK);
  });
}

const char* streamtally_ctx_server_id(const streamtally_ctx_t* ctx) {
  return ctx ? ctx->context->server_id().c_str() : "";
}

int streamtally_session_open(streamtally_ctx_t* ctx, const streamtally_session_info_t* info,
                             streamtally_session_t** out) {
  if (!ctx || !info || !out) return STREAMTALLY_EINVAL;
  *out = nullptr;
  const auto protocol = protocol_of(info->protocol);
  if (!protocol || (info->type != STREAMTALLY_PLAY && info->type != STREAMTALLY_PUBLISH)) return STREAMTALLY_EINVAL;
  return guarded([&] {
    streamtally::SessionInfo si;
    si.type = info->type == STREAMTALLY_PUBLISH ? streamtally::SessionType::Publish : streamtally::SessionType::Play;
    si.protocol = *protocol;
    si.stream = text(info->stream);
    si.client_ip = text(info->client_ip);
    si.user_agent = text(info->user_agent);
    si.referer = text(info->referer);
    si.user_id = nullable(info->user_id);
    si.token = nullable(info->token);
    for (size_t i = 0; i < info->n_tags && info->tags; ++i)
      if (info->tags[i].key) si.tags[info->tags[i].key] = text(info->tags[i].value);
    si.started_at = info->started_at_ms;
    auto handle = std::make_unique<streamtally_session_s>();
    handle->context = ctx->context;
    handle->session = ctx->context->tracker().open(std::move(si));
    {
      std::lock_guard lock(ctx->mutex);
      // Forget sessions that are gone, so long-lived hosts don't accumulate entries; only
      // when the list doubled, so an open costs O(1) amortized on the host's thread.
      if (ctx->sessions.size() >= ctx->prune_at) {
        std::erase_if(ctx->sessions, [](const std::weak_ptr<Session>& w) {
          auto s = w.lock();
          return !s || s->closed();
        });
        ctx->prune_at = std::max<std::size_t>(64, 2 * ctx->sessions.size());
      }
      ctx->sessions.push_back(handle->session);
    }
    *out = handle.release();
    return static_cast<int>(STREAMTALLY_OK);
  });
}

void streamtally_session_add_bytes(streamtally_session_t* s, uint64_t bytes_in, uint64_t bytes_out) {
  if (s) s->session->add_bytes(bytes_in, bytes_out);
}

void streamtally_session_set_bytes(streamtally_session_t* s, uint64_t total_in, uint64_t total_out) {
  if (s) s->session->set_totals(total_in, total_out);
}

int streamtally_session_close(streamtally_session_t* s, streamtally_end_reason_t reason) {
  return streamtally_session_close_at(s, reason, 0);
}

int streamtally_session_close_at(streamtally_session_t* s, streamtally_end_reason_t reason, int64_t ended_at_ms) {
  if (!s || ended_at_ms < 0) return STREAMTALLY_EINVAL;
  const auto r = reason_of(reason);
  if (!r) return STREAMTALLY_EINVAL;
  return guarded([&] {
    s->context->tracker().close(s->session, *r, ended_at_ms);
    return static_cast<int>(STREAMTALLY_OK);
  });
}

void streamtally_session_free(streamtally_session_t* s) {
  if (!s) return;
  guarded([&] {
    std::unique_ptr<streamtally_session_s> handle(s);
    handle->context->tracker().close(handle->session, EndReason::Server);
    // Never waits unless it is the very last user (the host has destroyed its contexts).
    Context::release(std::move(handle->context), std::chrono::milliseconds(1000), /*spool_now=*/false);
    return 0;
  });
}

const char* streamtally_session_id(const streamtally_session_t* s) { return s ? s->session->id().c_str() : ""; }

void streamtally_session_bytes(const streamtally_session_t* s, uint64_t* bytes_in, uint64_t* bytes_out) {
  if (bytes_in) *bytes_in = s ? s->session->bytes_in() : 0;
  if (bytes_out) *bytes_out = s ? s->session->bytes_out() : 0;
}

}  // extern "C"
