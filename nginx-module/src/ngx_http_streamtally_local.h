/*
 * This worker's view of the HTTP sessions it served recently: what its
 * requests added since they were last published to the shared table.
 *
 * The shared table (ngx_http_streamtally_zone.h) decides which session a
 * request belongs to, across workers. Looking it up under the zone's lock on
 * every request cost ~1 us of CPU per request with two workers (a lock and an
 * rbtree walk on cache lines the other worker keeps writing). So a worker
 * asks the shared table only for a viewer it does not know yet; afterwards
 * its requests are counted here, in process memory, with no lock, and the
 * sums are published to the shared entry — at most a publish period later —
 * in one pass under one lock (ngx_http_streamtally_zone_publish_locked()).
 *
 * A local entry is keyed like the shared one (the session key's MD5) and
 * points at the shared entry, which it checks by serial when it publishes: a
 * shared entry that was deleted (its session closed, evicted, or its owner
 * exited) has serial 0 or another serial; the sums then go where the zone puts
 * them and the local entry is marked dead (shared NULL), so the viewer's next
 * request asks the shared table again. Open addressing with linear probing, at
 * most half full; a worker's table grows as needed (ngx_alloc). The 100 ms
 * publish visits only the entries with hits (a list of their slots); the
 * once-a-second sweep walks the table and drops dead entries and those silent
 * for their timeout.
 */

#ifndef NGX_HTTP_STREAMTALLY_LOCAL_H_INCLUDED
#define NGX_HTTP_STREAMTALLY_LOCAL_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_streamtally_zone.h"


/* 64 bytes: a lookup touches one cache line. */
typedef struct {
    u_char                          md5[16];
    ngx_http_streamtally_entry_t   *shared;        /* NULL: dead, ask again */
    uint64_t                        serial;        /* of shared; 0: free slot */
    int64_t                         last_seen_ms;  /* latest request known */
    /* added here since the last publish */
    uint64_t                        bytes_in;
    uint64_t                        bytes_out;
    uint32_t                        requests;
    uint32_t                        timeout;       /* ms */
} ngx_http_streamtally_local_t;


typedef struct {
    ngx_http_streamtally_local_t   *slots;
    ngx_uint_t                      mask;      /* capacity - 1 (a power of 2) */
    ngx_uint_t                      used;
    /* the slots that got their first hit since the last publish */
    ngx_uint_t                     *pending;
    ngx_uint_t                      npending;
    unsigned                        overflow:1;  /* pending lost track: walk */
    ngx_log_t                      *log;
} ngx_http_streamtally_local_table_t;


ngx_int_t ngx_http_streamtally_local_init(
    ngx_http_streamtally_local_table_t *t, ngx_log_t *log);
void ngx_http_streamtally_local_free(ngx_http_streamtally_local_table_t *t);

ngx_http_streamtally_local_t *ngx_http_streamtally_local_find(
    ngx_http_streamtally_local_table_t *t, u_char md5[16]);

/* Remembers a shared entry this worker just counted a request into (or
 * replaces what it knew of that key); NULL when out of memory, which only
 * means the next request goes to the shared table again. */
ngx_http_streamtally_local_t *ngx_http_streamtally_local_insert(
    ngx_http_streamtally_local_table_t *t, u_char md5[16],
    ngx_http_streamtally_entry_t *shared, int64_t now_ms, ngx_msec_t timeout);

/* Adds one request to a known entry (no lock: process memory). */
static ngx_inline void
ngx_http_streamtally_local_count(ngx_http_streamtally_local_table_t *t,
    ngx_http_streamtally_local_t *l, ngx_http_streamtally_hit_t *hit)
{
    if (l->requests++ == 0) {
        if (t->npending <= t->mask) {
            t->pending[t->npending++] = l - t->slots;
        } else {
            t->overflow = 1;
        }
    }
    l->bytes_in += hit->bytes_in;
    l->bytes_out += hit->bytes_out;
    if (hit->now_ms > l->last_seen_ms) {
        l->last_seen_ms = hit->now_ms;
    }
}

/* Publishes one entry's hits (the caller holds the zone's lock); marks the
 * entry dead when its shared entry had gone (the hits went where the zone put
 * them). */
void ngx_http_streamtally_local_publish_one_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_local_t *l,
    ngx_http_streamtally_zone_t *zone);

/* Publishes the hits counted since the last publish (zone lock held). */
void ngx_http_streamtally_local_publish_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_zone_t *zone);

/* Publishes, then drops the dead entries and those silent for their timeout
 * (zone lock held). */
void ngx_http_streamtally_local_sweep_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_zone_t *zone,
    int64_t now_ms);

#endif /* NGX_HTTP_STREAMTALLY_LOCAL_H_INCLUDED */
