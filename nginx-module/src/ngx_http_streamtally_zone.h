/*
 * The HTTP session table, shared by all workers (an nginx slab zone).
 *
 * A viewer's requests land on different worker processes, but one viewer must
 * be one session. Each entry is one live session: keyed by the MD5 of its
 * evaluated streamtally_session_key, it holds the cumulative bytes every worker
 * added, when it was last seen, and which worker "owns" it — the worker whose
 * libstreamtally context opened the session and that emits its records.
 * Everything here runs under the zone's shmtx and is O(log n) per request.
 *
 * An entry's owner finds it again by (hash, serial); the serial is unique per
 * entry, so a freed and reused slot is never mistaken for the old session.
 * When the zone is full, the least recently seen entries are evicted: their
 * final bytes go to a small ring the owner drains, so an evicted session is
 * closed with its exact totals rather than lost.
 */

#ifndef NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED
#define NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_STREAMTALLY_MAX_WORKERS  128
#define NGX_HTTP_STREAMTALLY_EVICTED      256


typedef struct {
    ngx_rbtree_node_t          node;      /* node.key: first bytes of md5 */
    ngx_queue_t                lru;       /* most recently seen first */
    u_char                     md5[16];   /* of the evaluated session key */
    uint64_t                   serial;
    ngx_pid_t                  owner;
    ngx_msec_t                 timeout;   /* streamtally_session_timeout */
    int64_t                    last_seen_ms;
    uint64_t                   bytes_in;
    uint64_t                   bytes_out;
    uint64_t                   requests;
} ngx_http_streamtally_entry_t;


typedef struct {
    ngx_pid_t                  owner;
    uint64_t                   serial;
    int64_t                    last_seen_ms;
    uint64_t                   bytes_in;
    uint64_t                   bytes_out;
} ngx_http_streamtally_evicted_t;


typedef struct {
    ngx_rbtree_t               rbtree;
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                lru;
    uint64_t                   next_serial;
    ngx_uint_t                 entries;
    uint64_t                   evictions;
    /* live workers, to find the entries of a worker that died (SIGKILL) */
    ngx_pid_t                  workers[NGX_HTTP_STREAMTALLY_MAX_WORKERS];
    ngx_uint_t                 nevicted;
    ngx_http_streamtally_evicted_t  evicted[NGX_HTTP_STREAMTALLY_EVICTED];
} ngx_http_streamtally_shctx_t;


typedef struct {
    ngx_http_streamtally_shctx_t  *sh;
    ngx_slab_pool_t               *shpool;
} ngx_http_streamtally_zone_t;


/* What one request adds to its session. */
typedef struct {
    u_char                     md5[16];
    ngx_msec_t                 timeout;
    int64_t                    now_ms;
    uint64_t                   bytes_in;
    uint64_t                   bytes_out;
    unsigned                   may_create:1;  /* status < 400 */
} ngx_http_streamtally_hit_t;


typedef enum {
    NGX_HTTP_STREAMTALLY_COUNTED = 0,  /* added to an existing session */
    NGX_HTTP_STREAMTALLY_CREATED,      /* a new entry, owned by this worker */
    NGX_HTTP_STREAMTALLY_SKIPPED,      /* no session and may_create unset */
    NGX_HTTP_STREAMTALLY_NO_MEMORY     /* zone full even after eviction */
} ngx_http_streamtally_hit_rc_e;


ngx_int_t ngx_http_streamtally_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);

/* Counts a request; on CREATED, *serial is the new entry's serial. */
ngx_http_streamtally_hit_rc_e ngx_http_streamtally_zone_hit(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_hit_t *hit,
    uint64_t *serial);

/* The rest expects the caller to hold zone->shpool->mutex. */
ngx_http_streamtally_entry_t *ngx_http_streamtally_zone_find_locked(
    ngx_http_streamtally_zone_t *zone, u_char md5[16], uint64_t serial);
void ngx_http_streamtally_zone_delete_locked(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_entry_t *e);
/* Final totals and last request time of an evicted entry of `owner`;
 * NGX_DECLINED if not there. */
ngx_int_t ngx_http_streamtally_zone_take_evicted_locked(
    ngx_http_streamtally_zone_t *zone, ngx_pid_t owner, uint64_t serial,
    uint64_t *bytes_in, uint64_t *bytes_out, int64_t *last_seen_ms);
void ngx_http_streamtally_zone_register_locked(
    ngx_http_streamtally_zone_t *zone, ngx_pid_t pid);
void ngx_http_streamtally_zone_unregister_locked(
    ngx_http_streamtally_zone_t *zone, ngx_pid_t pid);
/* Forgets the entries of registered workers that no longer exist: their
 * sessions live on in the spool, where the library recovers them. */
ngx_uint_t ngx_http_streamtally_zone_reap_dead_locked(
    ngx_http_streamtally_zone_t *zone, ngx_log_t *log);

#endif /* NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED */
