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
 * entry and zeroed when the entry is deleted, so a freed or reused slot is
 * never mistaken for the old session — which also lets a worker keep a
 * pointer to an entry and check it (ngx_http_streamtally_local.h).
 * When the zone is full, the least recently seen entries are evicted (those
 * hit since their last publish get a second chance): their final bytes go to
 * a small ring the owner drains, so an evicted session is closed with its
 * exact totals rather than lost.
 *
 * Workers count requests locally and publish the sums here (see the local
 * table). Sums whose session ended in between (its owner exited, or it was
 * evicted after its owner took the ring's totals) are not dropped: they go to
 * the viewer's current entry, or become an entry without owner ("orphan")
 * that the viewer's next request adopts — that worker opens the session with
 * those bytes in it. An orphan nobody adopts within its timeout is reaped by
 * any worker's sweep, its bytes logged as lost.
 */

#ifndef NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED
#define NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_STREAMTALLY_MAX_WORKERS  128
#define NGX_HTTP_STREAMTALLY_EVICTED      256


typedef struct {
    /*
     * Read on every request by the workers that know the entry, written only
     * when entries come and go: the first 64 bytes, one cache line of the
     * 128-byte slab slot, apart from what publishes write. node.data (a byte
     * nginx's rbtree leaves to its users) is the "touched" mark: set without
     * the lock by a request counted in a worker's own table, whose publish
     * is still to come; an eviction spares such an entry once (moves it to
     * the head and clears the mark: CLOCK's second chance).
     */
    ngx_rbtree_node_t          node;      /* node.key: first bytes of md5 */
    u_char                     md5[16];   /* of the evaluated session key */
    uint64_t                   serial;
    ngx_queue_t                lru;       /* most recently seen first */
    ngx_pid_t                  owner;     /* 0: an orphan, see above */
    ngx_msec_t                 timeout;   /* streamtally_session_timeout */
    int64_t                    last_seen_ms;
    uint64_t                   bytes_in;
    uint64_t                   bytes_out;
    uint64_t                   requests;
} ngx_http_streamtally_entry_t;


typedef struct {
    ngx_pid_t                  owner;     /* 0: an orphan, see above */
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


/* What one request (or a worker's sum of requests) adds to its session. */
typedef struct {
    u_char                     md5[16];
    ngx_msec_t                 timeout;
    int64_t                    now_ms;
    uint64_t                   bytes_in;
    uint64_t                   bytes_out;
    uint64_t                   requests;
    unsigned                   may_create:1;  /* status < 400 */
} ngx_http_streamtally_hit_t;


typedef enum {
    NGX_HTTP_STREAMTALLY_COUNTED = 0,  /* added to an existing session */
    NGX_HTTP_STREAMTALLY_CREATED,      /* a new entry, owned by this worker */
    NGX_HTTP_STREAMTALLY_ADOPTED,      /* an orphan, now owned by this worker */
    NGX_HTTP_STREAMTALLY_SKIPPED,      /* no session and may_create unset */
    NGX_HTTP_STREAMTALLY_NO_MEMORY     /* zone full even after eviction */
} ngx_http_streamtally_hit_rc_e;


ngx_int_t ngx_http_streamtally_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);

/* The rest expects the caller to hold zone->shpool->mutex. */

/* Counts a request; *entry is its entry unless SKIPPED or NO_MEMORY. */
ngx_http_streamtally_hit_rc_e ngx_http_streamtally_zone_hit_locked(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_hit_t *hit,
    ngx_http_streamtally_entry_t **entry);
/* Adds a worker's sum of requests to entry e if it still has `serial`, or
 * else where it belongs (see above). NGX_OK: counted in e; NGX_DONE: counted
 * elsewhere (the caller forgets e); NGX_DECLINED: no memory, lost. */
ngx_int_t ngx_http_streamtally_zone_publish_locked(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_entry_t *e,
    uint64_t serial, ngx_http_streamtally_hit_t *sum);
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
/* Deletes the orphans silent for longer than their timeout + grace_ms. */
void ngx_http_streamtally_zone_reap_orphans_locked(
    ngx_http_streamtally_zone_t *zone, int64_t now_ms, ngx_msec_t grace_ms,
    ngx_log_t *log);

#endif /* NGX_HTTP_STREAMTALLY_ZONE_H_INCLUDED */
