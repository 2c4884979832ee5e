/*
 * libstreamtally C API — for C hosts such as nginx modules and GStreamer elements.
 *
 * A context owns, per process, the session tracker, a spool writer thread and
 * (when a collector is configured) an uploader thread. Contexts with the same
 * (spool path, collector URL) in one process share one spool connection and one
 * uploader: create/destroy are reference counted.
 *
 * Threading: every function is thread-safe. streamtally_session_add_bytes() is a
 * relaxed atomic add and nothing else, made for media hot paths. No call blocks on
 * disk or network except streamtally_ctx_flush() and the last
 * streamtally_ctx_destroy() of a context, both bounded by their timeout.
 *
 * Errors: functions return STREAMTALLY_OK or a negative code; no C++ exception
 * ever crosses this API. Call streamtally_ctx_create() after fork(): it starts
 * threads.
 */
#ifndef STREAMTALLY_H
#define STREAMTALLY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    STREAMTALLY_OK = 0,
    STREAMTALLY_EINVAL = -1,    /* a bad argument (NULL, unknown enum, ...) */
    STREAMTALLY_ESPOOL = -2,    /* the spool could not be opened */
    STREAMTALLY_ENOMEM = -3,
    STREAMTALLY_ETIMEDOUT = -4, /* flush did not finish in time (data stays spooled) */
    STREAMTALLY_EINTERNAL = -5
} streamtally_status_t;

typedef enum { STREAMTALLY_PLAY = 0, STREAMTALLY_PUBLISH = 1 } streamtally_type_t;

typedef enum {
    STREAMTALLY_PROTO_RTMP = 0,
    STREAMTALLY_PROTO_HLS,
    STREAMTALLY_PROTO_DASH,
    STREAMTALLY_PROTO_HTTP_PROGRESSIVE,
    STREAMTALLY_PROTO_HTTP_FLV,
    STREAMTALLY_PROTO_RTSP,
    STREAMTALLY_PROTO_SRT,
    STREAMTALLY_PROTO_WEBRTC,
    STREAMTALLY_PROTO_TCP,
    STREAMTALLY_PROTO_UDP,
    STREAMTALLY_PROTO_OTHER
} streamtally_protocol_t;

typedef enum {
    STREAMTALLY_END_CLIENT = 1,
    STREAMTALLY_END_SERVER,
    STREAMTALLY_END_TIMEOUT,
    STREAMTALLY_END_ERROR
} streamtally_end_reason_t;

typedef enum {
    STREAMTALLY_LOG_ERROR = 0,
    STREAMTALLY_LOG_WARN,
    STREAMTALLY_LOG_INFO,
    STREAMTALLY_LOG_DEBUG
} streamtally_log_level_t;

/* Receives libstreamtally's log lines (from any thread). NULL: stderr. */
typedef void (*streamtally_log_fn)(void *user, streamtally_log_level_t level, const char *message);

typedef struct {
    const char *spool_path;       /* required: SQLite spool file */
    const char *collector_url;    /* base URL; NULL or "": no upload from this process */
    const char *collector_token;  /* ingest token, may be NULL */
    const char *ca_file;          /* CA bundle for https, NULL: system default */
    const char *server_id;        /* NULL: the id generated once and kept in the spool */
    const char *host;             /* NULL: gethostname() */
    uint64_t interim_ms;          /* 0: 60000 */
    uint32_t batch_size;          /* 0: 500 */
    uint64_t flush_ms;            /* 0: 5000 */
    uint64_t spool_max_bytes;     /* 0: 1 GiB */
    streamtally_log_fn log;
    void *log_user;
} streamtally_config_t;

typedef struct {
    const char *key;
    const char *value;
} streamtally_tag_t;

/* What a host knows when a session starts. Strings may be NULL (empty), need not
 * be NUL-terminated when a length is given (len 0 with non-NULL pointer: use
 * strlen), and are copied, sanitized to UTF-8 and truncated to the SPEC limits. */
typedef struct {
    const char *data;
    size_t len;
} streamtally_str_t;

typedef struct {
    streamtally_type_t type;
    streamtally_protocol_t protocol;
    streamtally_str_t stream;
    streamtally_str_t client_ip;
    streamtally_str_t user_agent;
    streamtally_str_t referer;
    streamtally_str_t user_id;    /* data NULL: JSON null */
    streamtally_str_t token;      /* data NULL: JSON null */
    const streamtally_tag_t *tags;
    size_t n_tags;
    int64_t started_at_ms;        /* 0: now */
} streamtally_session_info_t;

typedef struct streamtally_ctx_s streamtally_ctx_t;
typedef struct streamtally_session_s streamtally_session_t;

typedef struct {
    uint64_t sessions_open;
    uint64_t records_spooled;
    uint64_t records_dropped;       /* lost to the spool size cap or a full disk */
    uint64_t batches_sent;
    uint64_t batches_acked;
    uint64_t batches_retried;
    uint64_t batches_dead_lettered;
    uint64_t records_uploaded;
    uint64_t bytes_uploaded;        /* on the wire, compressed */
    uint64_t backlog_records;       /* pending in the spool */
    int64_t oldest_pending_age_ms;  /* -1: nothing pending */
} streamtally_stats_t;

int streamtally_ctx_create(const streamtally_config_t *config, streamtally_ctx_t **out);

/* Closes the sessions opened through this handle with end_reason "server", writes what
 * was tracked to the spool (local disk) and releases the handle. The last release of a
 * context (no other handle or session holds it) also uploads what it can within
 * timeout_ms; what is not uploaded stays in the spool for the next start. Other releases
 * never wait for the network. */
void streamtally_ctx_destroy(streamtally_ctx_t *ctx, uint64_t timeout_ms);

/* Writes everything tracked so far to the spool and, with a collector, uploads
 * it; returns STREAMTALLY_ETIMEDOUT if that took longer than timeout_ms. */
int streamtally_ctx_flush(streamtally_ctx_t *ctx, uint64_t timeout_ms);

int streamtally_ctx_stats(streamtally_ctx_t *ctx, streamtally_stats_t *out);

/* The server_id records carry (configured or kept in the spool). */
const char *streamtally_ctx_server_id(const streamtally_ctx_t *ctx);

/* Opens a session: records seq 0 now and interim updates every interim_ms. */
int streamtally_session_open(streamtally_ctx_t *ctx, const streamtally_session_info_t *info,
                             streamtally_session_t **out);

/* Hot path: O(1), lock-free. Safe from any thread, also after close (ignored). */
void streamtally_session_add_bytes(streamtally_session_t *s, uint64_t bytes_in, uint64_t bytes_out);

/* For hosts that read cumulative counters (e.g. multisocketsink stats): the totals
 * only ever grow; a smaller value than already counted is ignored. */
void streamtally_session_set_bytes(streamtally_session_t *s, uint64_t total_in, uint64_t total_out);

/* Closes the session: the final record with end_reason. Idempotent — a second
 * close of the same session is a no-op returning STREAMTALLY_OK. */
int streamtally_session_close(streamtally_session_t *s, streamtally_end_reason_t reason);

/* Like streamtally_session_close(), with the moment the session ended (ms since the
 * epoch, UTC; 0: now) — for hosts that notice an end after it happened, e.g. an HTTP
 * session over at its last request, detected only after the idle timeout. The
 * record's updated_at and ended_at take that value (never earlier than started_at or
 * the last emitted update). Idempotent like streamtally_session_close(). */
int streamtally_session_close_at(streamtally_session_t *s, streamtally_end_reason_t reason,
                                 int64_t ended_at_ms);

/* Releases the host's handle (closing the session with "server" if still open).
 * The handle must not be used afterwards. */
void streamtally_session_free(streamtally_session_t *s);

/* The session's UUID (valid until streamtally_session_free). */
const char *streamtally_session_id(const streamtally_session_t *s);

void streamtally_session_bytes(const streamtally_session_t *s, uint64_t *bytes_in, uint64_t *bytes_out);

#ifdef __cplusplus
}
#endif

#endif /* STREAMTALLY_H */
