/*
 * This worker's view of its recent HTTP sessions; see the header.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_streamtally_local.h"


#define NGX_HTTP_STREAMTALLY_LOCAL_MIN  1024   /* slots at start */

_Static_assert(sizeof(ngx_http_streamtally_local_t) == 64,
               "a local entry is one cache line");


static ngx_http_streamtally_local_t *ngx_http_streamtally_local_alloc_slots(
    ngx_uint_t n, ngx_log_t *log);
static ngx_int_t ngx_http_streamtally_local_grow(
    ngx_http_streamtally_local_table_t *t);
static void ngx_http_streamtally_local_delete(
    ngx_http_streamtally_local_table_t *t, ngx_uint_t i);


/* The slot a key would like: MD5 bits are already uniformly spread. */
static ngx_inline ngx_uint_t
ngx_http_streamtally_local_home(ngx_http_streamtally_local_table_t *t,
    u_char md5[16])
{
    uint64_t  h;

    ngx_memcpy(&h, md5 + 8, sizeof(uint64_t));

    return (ngx_uint_t) h & t->mask;
}


ngx_int_t
ngx_http_streamtally_local_init(ngx_http_streamtally_local_table_t *t,
    ngx_log_t *log)
{
    ngx_memzero(t, sizeof(ngx_http_streamtally_local_table_t));
    t->log = log;

    t->slots = ngx_http_streamtally_local_alloc_slots(
                   NGX_HTTP_STREAMTALLY_LOCAL_MIN, log);
    t->pending = ngx_alloc(NGX_HTTP_STREAMTALLY_LOCAL_MIN * sizeof(ngx_uint_t),
                           log);
    if (t->slots == NULL || t->pending == NULL) {
        ngx_http_streamtally_local_free(t);
        return NGX_ERROR;
    }

    t->mask = NGX_HTTP_STREAMTALLY_LOCAL_MIN - 1;

    return NGX_OK;
}


void
ngx_http_streamtally_local_free(ngx_http_streamtally_local_table_t *t)
{
    if (t->slots != NULL) {
        ngx_free(t->slots);
        t->slots = NULL;
    }

    if (t->pending != NULL) {
        ngx_free(t->pending);
        t->pending = NULL;
    }
}


ngx_http_streamtally_local_t *
ngx_http_streamtally_local_find(ngx_http_streamtally_local_table_t *t,
    u_char md5[16])
{
    ngx_uint_t                     i;
    ngx_http_streamtally_local_t  *l;

    for (i = ngx_http_streamtally_local_home(t, md5); /* void */;
         i = (i + 1) & t->mask)
    {
        l = &t->slots[i];

        if (l->serial == 0) {
            return NULL;
        }

        if (ngx_memcmp(l->md5, md5, 16) == 0) {
            return l;
        }
    }
}


ngx_http_streamtally_local_t *
ngx_http_streamtally_local_insert(ngx_http_streamtally_local_table_t *t,
    u_char md5[16], ngx_http_streamtally_entry_t *shared, int64_t now_ms,
    ngx_msec_t timeout)
{
    ngx_uint_t                     i;
    ngx_http_streamtally_local_t  *l;

    /* at most half full, so probes stay short */
    if ((t->used + 1) * 2 > t->mask + 1
        && ngx_http_streamtally_local_grow(t) != NGX_OK)
    {
        return NULL;
    }

    for (i = ngx_http_streamtally_local_home(t, md5); /* void */;
         i = (i + 1) & t->mask)
    {
        l = &t->slots[i];

        if (l->serial == 0) {
            t->used++;
            break;
        }

        if (ngx_memcmp(l->md5, md5, 16) == 0) {
            /* the caller published what it held */
            break;
        }
    }

    /* a slot in the pending list with no hits is skipped there */
    ngx_memcpy(l->md5, md5, 16);
    l->shared = shared;
    l->serial = shared->serial;
    l->last_seen_ms = now_ms;
    l->timeout = (uint32_t) ngx_min(timeout, (ngx_msec_t) 0xffffffff);
    l->bytes_in = 0;
    l->bytes_out = 0;
    l->requests = 0;

    return l;
}


void
ngx_http_streamtally_local_publish_one_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_local_t *l,
    ngx_http_streamtally_zone_t *zone)
{
    ngx_int_t                    rc;
    ngx_http_streamtally_hit_t   sum;

    ngx_memcpy(sum.md5, l->md5, 16);
    sum.timeout = l->timeout;
    sum.now_ms = l->last_seen_ms;
    sum.bytes_in = l->bytes_in;
    sum.bytes_out = l->bytes_out;
    sum.requests = l->requests;

    rc = ngx_http_streamtally_zone_publish_locked(zone, l->shared, l->serial,
                                                  &sum);
    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, t->log, 0,
                      "streamtally: session table full, %uL bytes not "
                      "accounted; increase \"streamtally_zone\"",
                      l->bytes_out);
    }

    l->bytes_in = 0;
    l->bytes_out = 0;
    l->requests = 0;

    if (rc != NGX_OK) {
        /* the session ended meanwhile: the next request asks again */
        l->shared = NULL;
        return;
    }

    /* what other workers' requests told the shared entry */
    if (l->shared->last_seen_ms > l->last_seen_ms) {
        l->last_seen_ms = l->shared->last_seen_ms;
    }
}


void
ngx_http_streamtally_local_publish_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_zone_t *zone)
{
    ngx_uint_t                     i;
    ngx_http_streamtally_local_t  *l;

    if (t->overflow) {
        for (i = 0; i <= t->mask; i++) {
            l = &t->slots[i];
            if (l->serial != 0 && l->requests) {
                ngx_http_streamtally_local_publish_one_locked(t, l, zone);
            }
        }

    } else {
        for (i = 0; i < t->npending; i++) {
            l = &t->slots[t->pending[i]];
            if (l->requests) {
                ngx_http_streamtally_local_publish_one_locked(t, l, zone);
            }
        }
    }

    t->npending = 0;
    t->overflow = 0;
}


void
ngx_http_streamtally_local_sweep_locked(
    ngx_http_streamtally_local_table_t *t, ngx_http_streamtally_zone_t *zone,
    int64_t now_ms)
{
    ngx_uint_t                     i;
    ngx_http_streamtally_local_t  *l;

    ngx_http_streamtally_local_publish_locked(t, zone);

    for (i = 0; i <= t->mask; /* void */) {
        l = &t->slots[i];

        if (l->serial != 0
            && (l->shared == NULL
                || now_ms - l->last_seen_ms >= (int64_t) l->timeout))
        {
            ngx_http_streamtally_local_delete(t, i);
            continue;  /* slot i holds the next entry of the probe run now */
        }

        i++;
    }
}


/* Backward-shift deletion: the entries after i in its probe run move up, so
 * lookups need no tombstones. */
static void
ngx_http_streamtally_local_delete(ngx_http_streamtally_local_table_t *t,
    ngx_uint_t i)
{
    ngx_uint_t  j, home;

    t->used--;

    for (j = (i + 1) & t->mask; t->slots[j].serial != 0;
         j = (j + 1) & t->mask)
    {
        home = ngx_http_streamtally_local_home(t, t->slots[j].md5);

        /* j may move to i when its home is not in (i, j] (cyclically) */
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }

    t->slots[i].serial = 0;
}


static ngx_int_t
ngx_http_streamtally_local_grow(ngx_http_streamtally_local_table_t *t)
{
    ngx_uint_t                     i, j, n, *pending;
    ngx_http_streamtally_local_t  *old, *slots;

    n = (t->mask + 1) * 2;

    slots = ngx_http_streamtally_local_alloc_slots(n, t->log);
    if (slots == NULL) {
        return NGX_ERROR;
    }

    pending = ngx_alloc(n * sizeof(ngx_uint_t), t->log);
    if (pending == NULL) {
        ngx_free(slots);
        return NGX_ERROR;
    }

    ngx_free(t->pending);
    t->pending = pending;
    t->npending = 0;
    t->overflow = 0;

    old = t->slots;
    t->slots = slots;
    t->mask = n - 1;

    for (i = 0; i <= (n / 2) - 1; i++) {
        if (old[i].serial == 0) {
            continue;
        }

        for (j = ngx_http_streamtally_local_home(t, old[i].md5);
             slots[j].serial != 0;
             j = (j + 1) & t->mask)
        {
            /* void */
        }

        slots[j] = old[i];

        /* the entries' slots moved: list the pending ones anew */
        if (slots[j].requests) {
            t->pending[t->npending++] = j;
        }
    }

    ngx_free(old);

    return NGX_OK;
}


/* n zeroed slots, each on a cache line of its own */
static ngx_http_streamtally_local_t *
ngx_http_streamtally_local_alloc_slots(ngx_uint_t n, ngx_log_t *log)
{
    ngx_http_streamtally_local_t  *slots;

    slots = ngx_memalign(64, n * sizeof(ngx_http_streamtally_local_t), log);
    if (slots != NULL) {
        ngx_memzero(slots, n * sizeof(ngx_http_streamtally_local_t));
    }

    return slots;
}
