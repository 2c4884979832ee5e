/*
 * The HTTP session table in shared memory; see the header.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_streamtally_zone.h"


/* What every request reads (node.data, serial) fits the slot's first line. */
_Static_assert(offsetof(ngx_http_streamtally_entry_t, lru) <= 64,
               "the read-mostly part of an entry must stay in one cache line");

/* Entries evicted at most per allocation attempt before giving up. */
#define NGX_HTTP_STREAMTALLY_EVICT_BATCH  8


static void ngx_http_streamtally_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_streamtally_entry_t *ngx_http_streamtally_lookup_locked(
    ngx_http_streamtally_zone_t *zone, u_char md5[16]);
static ngx_http_streamtally_entry_t *ngx_http_streamtally_alloc_locked(
    ngx_http_streamtally_zone_t *zone);
static void ngx_http_streamtally_evict_locked(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_entry_t *e);
static ngx_http_streamtally_evicted_t *ngx_http_streamtally_evicted_of_locked(
    ngx_http_streamtally_zone_t *zone, uint64_t serial);
static void ngx_http_streamtally_add_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_entry_t *e, ngx_http_streamtally_hit_t *hit);
static ngx_http_streamtally_entry_t *ngx_http_streamtally_create_locked(
    ngx_http_streamtally_zone_t *zone, ngx_http_streamtally_hit_t *hit,
    ngx_pid_t owner);


static ngx_inline ngx_rbtree_key_t
ngx_http_streamtally_node_key(u_char md5[16])
{
    uint32_t  key;

    ngx_memcpy(&key, md5, sizeof(uint32_t));

    return key;
}


ngx_int_t
ngx_http_streamtally_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_streamtally_zone_t  *ozone = data;

    ngx_http_streamtally_zone_t  *zone;

    zone = shm_zone->data;

    /* reload with the same zone: keep every live session */
    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_http_streamtally_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_streamtally_rbtree_insert);
    ngx_queue_init(&zone->sh->lru);
    zone->sh->next_serial = 1;

    zone->shpool->log_nomem = 0;  /* a full zone evicts, it is no error */

    return NGX_OK;
}


ngx_http_streamtally_hit_rc_e
ngx_http_streamtally_zone_hit_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_hit_t *hit, ngx_http_streamtally_entry_t **entry)
{
    ngx_http_streamtally_entry_t  *e;

    e = ngx_http_streamtally_lookup_locked(zone, hit->md5);

    if (e != NULL) {
        ngx_http_streamtally_add_locked(zone, e, hit);
        *entry = e;

        if (e->owner == 0 && hit->may_create) {
            e->owner = ngx_pid;
            return NGX_HTTP_STREAMTALLY_ADOPTED;
        }

        return NGX_HTTP_STREAMTALLY_COUNTED;
    }

    if (!hit->may_create) {
        return NGX_HTTP_STREAMTALLY_SKIPPED;
    }

    e = ngx_http_streamtally_create_locked(zone, hit, ngx_pid);
    if (e == NULL) {
        return NGX_HTTP_STREAMTALLY_NO_MEMORY;
    }

    *entry = e;

    return NGX_HTTP_STREAMTALLY_CREATED;
}


ngx_int_t
ngx_http_streamtally_zone_publish_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_entry_t *e, uint64_t serial,
    ngx_http_streamtally_hit_t *sum)
{
    ngx_http_streamtally_evicted_t  *ev;

    /* a deleted entry has serial 0, a reused slot another serial */
    if (e->serial == serial) {
        ngx_http_streamtally_add_locked(zone, e, sum);
        return NGX_OK;
    }

    /* evicted, its final totals not yet taken by its owner */
    ev = ngx_http_streamtally_evicted_of_locked(zone, serial);
    if (ev != NULL) {
        ev->bytes_in += sum->bytes_in;
        ev->bytes_out += sum->bytes_out;
        if (sum->now_ms > ev->last_seen_ms) {
            ev->last_seen_ms = sum->now_ms;
        }
        return NGX_DONE;
    }

    /* the viewer's current session, or one without owner yet */
    e = ngx_http_streamtally_lookup_locked(zone, sum->md5);
    if (e == NULL) {
        e = ngx_http_streamtally_create_locked(zone, sum, 0);
        if (e == NULL) {
            return NGX_DECLINED;
        }

    } else {
        ngx_http_streamtally_add_locked(zone, e, sum);
    }

    return NGX_DONE;
}


ngx_http_streamtally_entry_t *
ngx_http_streamtally_zone_find_locked(ngx_http_streamtally_zone_t *zone,
    u_char md5[16], uint64_t serial)
{
    ngx_http_streamtally_entry_t  *e;

    e = ngx_http_streamtally_lookup_locked(zone, md5);

    return (e != NULL && e->serial == serial) ? e : NULL;
}


void
ngx_http_streamtally_zone_delete_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_entry_t *e)
{
    e->serial = 0;  /* what a worker's pointer to it checks */
    ngx_queue_remove(&e->lru);
    ngx_rbtree_delete(&zone->sh->rbtree, &e->node);
    zone->sh->entries--;
    ngx_slab_free_locked(zone->shpool, e);
}


ngx_int_t
ngx_http_streamtally_zone_take_evicted_locked(
    ngx_http_streamtally_zone_t *zone, ngx_pid_t owner, uint64_t serial,
    uint64_t *bytes_in, uint64_t *bytes_out, int64_t *last_seen_ms)
{
    ngx_http_streamtally_shctx_t    *sh;
    ngx_http_streamtally_evicted_t  *ev;

    ev = ngx_http_streamtally_evicted_of_locked(zone, serial);
    if (ev == NULL || ev->owner != owner) {
        return NGX_DECLINED;
    }

    *bytes_in = ev->bytes_in;
    *bytes_out = ev->bytes_out;
    *last_seen_ms = ev->last_seen_ms;

    sh = zone->sh;
    *ev = sh->evicted[--sh->nevicted];

    return NGX_OK;
}


void
ngx_http_streamtally_zone_register_locked(ngx_http_streamtally_zone_t *zone,
    ngx_pid_t pid)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_STREAMTALLY_MAX_WORKERS; i++) {
        if (zone->sh->workers[i] == pid) {
            return;
        }
    }

    for (i = 0; i < NGX_HTTP_STREAMTALLY_MAX_WORKERS; i++) {
        if (zone->sh->workers[i] == 0) {
            zone->sh->workers[i] = pid;
            return;
        }
    }
}


void
ngx_http_streamtally_zone_unregister_locked(ngx_http_streamtally_zone_t *zone,
    ngx_pid_t pid)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_STREAMTALLY_MAX_WORKERS; i++) {
        if (zone->sh->workers[i] == pid) {
            zone->sh->workers[i] = 0;
        }
    }
}


ngx_uint_t
ngx_http_streamtally_zone_reap_dead_locked(ngx_http_streamtally_zone_t *zone,
    ngx_log_t *log)
{
    ngx_pid_t                        pid;
    ngx_uint_t                       i, j, reaped;
    ngx_queue_t                     *q, *next;
    ngx_http_streamtally_shctx_t    *sh;
    ngx_http_streamtally_entry_t    *e;

    sh = zone->sh;
    reaped = 0;

    for (i = 0; i < NGX_HTTP_STREAMTALLY_MAX_WORKERS; i++) {
        pid = sh->workers[i];

        /* kill(pid, 0) fails with ESRCH only when the process is gone
         * (workers share a user, so EPERM cannot mean "dead") */
        if (pid == 0 || pid == ngx_pid
            || kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        sh->workers[i] = 0;

        for (q = ngx_queue_head(&sh->lru);
             q != ngx_queue_sentinel(&sh->lru);
             q = next)
        {
            next = ngx_queue_next(q);
            e = ngx_queue_data(q, ngx_http_streamtally_entry_t, lru);
            if (e->owner == pid) {
                ngx_http_streamtally_zone_delete_locked(zone, e);
                reaped++;
            }
        }

        for (j = 0; j < sh->nevicted; /* void */) {
            if (sh->evicted[j].owner == pid) {
                sh->evicted[j] = sh->evicted[--sh->nevicted];
            } else {
                j++;
            }
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "streamtally: worker %P is gone, %ui of its HTTP "
                      "sessions are left to spool recovery", pid, reaped);
    }

    return reaped;
}


void
ngx_http_streamtally_zone_reap_orphans_locked(
    ngx_http_streamtally_zone_t *zone, int64_t now_ms, ngx_msec_t grace_ms,
    ngx_log_t *log)
{
    ngx_queue_t                   *q, *prev;
    ngx_http_streamtally_entry_t  *e;

    /* least recently seen first: stop at the first entry still live */
    for (q = ngx_queue_last(&zone->sh->lru);
         q != ngx_queue_sentinel(&zone->sh->lru);
         q = prev)
    {
        prev = ngx_queue_prev(q);
        e = ngx_queue_data(q, ngx_http_streamtally_entry_t, lru);

        if (now_ms - e->last_seen_ms < (int64_t) (e->timeout + grace_ms)) {
            break;
        }

        if (e->owner == 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "streamtally: %uL bytes out of a viewer whose "
                          "session ended while they were counted are not "
                          "accounted (the viewer did not come back)",
                          e->bytes_out);
            ngx_http_streamtally_zone_delete_locked(zone, e);
        }
    }
}


/* The eviction ring's record of the entry that had `serial`, if still there
 * (serials are unique: no owner needed to tell them apart). */
static ngx_http_streamtally_evicted_t *
ngx_http_streamtally_evicted_of_locked(ngx_http_streamtally_zone_t *zone,
    uint64_t serial)
{
    ngx_uint_t  i;

    for (i = 0; i < zone->sh->nevicted; i++) {
        if (zone->sh->evicted[i].serial == serial) {
            return &zone->sh->evicted[i];
        }
    }

    return NULL;
}


static void
ngx_http_streamtally_add_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_entry_t *e, ngx_http_streamtally_hit_t *hit)
{
    e->bytes_in += hit->bytes_in;
    e->bytes_out += hit->bytes_out;
    e->requests += hit->requests;
    if (hit->now_ms > e->last_seen_ms) {
        e->last_seen_ms = hit->now_ms;
    }
    ngx_queue_remove(&e->lru);
    ngx_queue_insert_head(&zone->sh->lru, &e->lru);
}


static ngx_http_streamtally_entry_t *
ngx_http_streamtally_create_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_hit_t *hit, ngx_pid_t owner)
{
    ngx_http_streamtally_entry_t  *e;

    e = ngx_http_streamtally_alloc_locked(zone);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_streamtally_entry_t));
    ngx_memcpy(e->md5, hit->md5, 16);
    e->node.key = ngx_http_streamtally_node_key(hit->md5);
    e->serial = zone->sh->next_serial++;
    e->owner = owner;
    e->timeout = hit->timeout;
    e->last_seen_ms = hit->now_ms;
    e->bytes_in = hit->bytes_in;
    e->bytes_out = hit->bytes_out;
    e->requests = hit->requests;

    ngx_rbtree_insert(&zone->sh->rbtree, &e->node);
    ngx_queue_insert_head(&zone->sh->lru, &e->lru);
    zone->sh->entries++;

    return e;
}


static ngx_http_streamtally_entry_t *
ngx_http_streamtally_lookup_locked(ngx_http_streamtally_zone_t *zone,
    u_char md5[16])
{
    ngx_int_t                      rc;
    ngx_rbtree_key_t               key;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_streamtally_entry_t  *e;

    key = ngx_http_streamtally_node_key(md5);
    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        e = (ngx_http_streamtally_entry_t *) node;
        rc = ngx_memcmp(md5, e->md5, 16);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_streamtally_entry_t *
ngx_http_streamtally_alloc_locked(ngx_http_streamtally_zone_t *zone)
{
    ngx_uint_t                      n, spared;
    ngx_queue_t                    *q;
    ngx_http_streamtally_entry_t   *e, *victim;

    e = ngx_slab_alloc_locked(zone->shpool,
                              sizeof(ngx_http_streamtally_entry_t));

    /* full: evict the least recently seen sessions (LRU tail), sparing once
     * those a worker counted since its last publish */
    for (n = 0; e == NULL && n < NGX_HTTP_STREAMTALLY_EVICT_BATCH; n++) {
        if (ngx_queue_empty(&zone->sh->lru)) {
            break;
        }

        for (spared = 0; spared < zone->sh->entries; spared++) {
            q = ngx_queue_last(&zone->sh->lru);
            victim = ngx_queue_data(q, ngx_http_streamtally_entry_t, lru);
            if (!victim->node.data) {  /* not touched */
                break;
            }
            victim->node.data = 0;
            ngx_queue_remove(q);
            ngx_queue_insert_head(&zone->sh->lru, q);
        }

        ngx_http_streamtally_evict_locked(zone, victim);

        e = ngx_slab_alloc_locked(zone->shpool,
                                  sizeof(ngx_http_streamtally_entry_t));
    }

    return e;
}


static void
ngx_http_streamtally_evict_locked(ngx_http_streamtally_zone_t *zone,
    ngx_http_streamtally_entry_t *e)
{
    ngx_http_streamtally_shctx_t    *sh;
    ngx_http_streamtally_evicted_t  *ev;

    sh = zone->sh;

    /* ring full: the oldest slot goes; its owner then closes that session
     * with the totals it saw at its last sweep (at most a second old) */
    if (sh->nevicted == NGX_HTTP_STREAMTALLY_EVICTED) {
        ngx_memmove(&sh->evicted[0], &sh->evicted[1],
                    (NGX_HTTP_STREAMTALLY_EVICTED - 1)
                    * sizeof(ngx_http_streamtally_evicted_t));
        sh->nevicted--;
    }

    ev = &sh->evicted[sh->nevicted++];
    ev->owner = e->owner;
    ev->serial = e->serial;
    ev->last_seen_ms = e->last_seen_ms;
    ev->bytes_in = e->bytes_in;
    ev->bytes_out = e->bytes_out;

    sh->evictions++;

    ngx_http_streamtally_zone_delete_locked(zone, e);
}


static void
ngx_http_streamtally_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_streamtally_entry_t   *e, *et;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            e = (ngx_http_streamtally_entry_t *) node;
            et = (ngx_http_streamtally_entry_t *) temp;
            p = (ngx_memcmp(e->md5, et->md5, 16) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
