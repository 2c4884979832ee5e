/*
 * ngx_http_streamtally_module: StreamTally sessions for HTTP playout (HLS,
 * DASH, progressive) — no nginx-rtmp needed.
 *
 * Every request of a "streamtally on" location is counted in the log phase
 * (bytes sent incl. header, request bytes received), keyed by
 * streamtally_session_key. The shared session table (ngx_http_streamtally_zone.c)
 * says which session a viewer's request belongs to, whichever worker serves
 * it: the worker that creates an entry opens the libstreamtally session and
 * owns it. A worker asks the shared table only for a viewer it does not know;
 * it counts that viewer's later requests in its own table, without a lock,
 * and publishes the sums to the shared entries every 100 ms
 * (ngx_http_streamtally_local.c). Once a second each worker copies the
 * totals of its own sessions into the library (whose interim updates read
 * them) and closes those silent for streamtally_session_timeout (plus the
 * publish delay, so no worker still holds hits of a session it closes).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>

#include "ngx_streamtally_main_conf.h"
#include "ngx_http_streamtally_zone.h"
#include "ngx_http_streamtally_local.h"


#define NGX_HTTP_STREAMTALLY_SWEEP_MS    1000
#define NGX_HTTP_STREAMTALLY_PUBLISH_MS  100
/* Hits reach the shared table at most a publish period late: an owner waits
 * that long (twice, for a busy event loop) before it closes a silent session. */
#define NGX_HTTP_STREAMTALLY_GRACE_MS    (2 * NGX_HTTP_STREAMTALLY_PUBLISH_MS)


typedef struct {
    ngx_streamtally_main_conf_t    common;    /* must stay first */
    size_t                         zone_size;
    ngx_shm_zone_t                *shm_zone;
} ngx_http_streamtally_main_conf_t;


typedef struct {
    ngx_str_t                      name;
    ngx_http_complex_value_t       value;
} ngx_http_streamtally_tag_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_int_t                      protocol;      /* -1: from the URI */
    ngx_http_complex_value_t      *stream;        /* NULL: from the URI */
    ngx_http_complex_value_t      *session_key;   /* NULL: ip + UA + token */
    ngx_msec_t                     session_timeout;
    ngx_http_complex_value_t      *token;
    ngx_http_complex_value_t      *user_id;
    ngx_array_t                   *tags;          /* ngx_http_streamtally_tag_t */
} ngx_http_streamtally_loc_conf_t;


/* A session this worker owns: its library handle and where its entry is. */
typedef struct {
    ngx_queue_t                    queue;
    u_char                         md5[16];
    uint64_t                       serial;
    uint64_t                       bytes_in;      /* totals at the last sweep */
    uint64_t                       bytes_out;
    streamtally_session_t         *session;
    int64_t                        last_seen_ms;  /* at the last sweep */
    streamtally_end_reason_t       end_reason;    /* once it is closing */
    int64_t                        ended_at_ms;   /* once it is closing; 0: now */
} ngx_http_streamtally_owned_t;


static ngx_int_t ngx_http_streamtally_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_streamtally_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_streamtally_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_streamtally_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_streamtally_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_streamtally_set_protocol(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_streamtally_set_tag(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_streamtally_set_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_streamtally_init_process(ngx_cycle_t *cycle);
static void ngx_http_streamtally_exit_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_http_streamtally_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_streamtally_open(ngx_http_request_t *r,
    ngx_http_streamtally_loc_conf_t *lcf, ngx_http_streamtally_hit_t *hit,
    uint64_t serial);
static ngx_int_t ngx_http_streamtally_session_key(ngx_http_request_t *r,
    ngx_http_streamtally_loc_conf_t *lcf, u_char md5[16]);
static ngx_int_t ngx_http_streamtally_protocol_of(ngx_str_t *uri);
static void ngx_http_streamtally_stream_of(ngx_str_t *uri, ngx_str_t *stream);
static void ngx_http_streamtally_sweep_handler(ngx_event_t *ev);
static void ngx_http_streamtally_sweep(ngx_flag_t closing_all);
static void ngx_http_streamtally_publish_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_streamtally_count_shared(ngx_http_streamtally_hit_t *hit,
    ngx_http_streamtally_local_t *known, ngx_http_streamtally_entry_t **entry);


/* The protocol names of SPEC, in streamtally_protocol_t order. */
static ngx_str_t  ngx_http_streamtally_protocols[] = {
    ngx_string("rtmp"),
    ngx_string("hls"),
    ngx_string("dash"),
    ngx_string("http-progressive"),
    ngx_string("http-flv"),
    ngx_string("rtsp"),
    ngx_string("srt"),
    ngx_string("webrtc"),
    ngx_string("tcp"),
    ngx_string("udp"),
    ngx_string("other"),
    ngx_null_string
};


static ngx_command_t  ngx_http_streamtally_commands[] = {

    NGX_STREAMTALLY_MAIN_COMMANDS(NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET),

    { ngx_string("streamtally_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_streamtally_set_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_streamtally_main_conf_t, zone_size),
      NULL },

    { ngx_string("streamtally"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, enable),
      NULL },

    { ngx_string("streamtally_tag"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_streamtally_set_tag,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("streamtally_protocol"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_streamtally_set_protocol,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, protocol),
      NULL },

    { ngx_string("streamtally_stream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, stream),
      NULL },

    { ngx_string("streamtally_session_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, session_key),
      NULL },

    { ngx_string("streamtally_session_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_streamtally_conf_set_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, session_timeout),
      NULL },

    { ngx_string("streamtally_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, token),
      NULL },

    { ngx_string("streamtally_user_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_streamtally_loc_conf_t, user_id),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_streamtally_module_ctx = {
    NULL,                                      /* preconfiguration */
    ngx_http_streamtally_postconfiguration,    /* postconfiguration */
    ngx_http_streamtally_create_main_conf,     /* create main configuration */
    ngx_http_streamtally_init_main_conf,       /* init main configuration */
    NULL,                                      /* create server configuration */
    NULL,                                      /* merge server configuration */
    ngx_http_streamtally_create_loc_conf,      /* create location configuration */
    ngx_http_streamtally_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_streamtally_module = {
    NGX_MODULE_V1,
    &ngx_http_streamtally_module_ctx,          /* module context */
    ngx_http_streamtally_commands,             /* module directives */
    NGX_HTTP_MODULE,                           /* module type */
    NULL,                                      /* init master */
    NULL,                                      /* init module */
    ngx_http_streamtally_init_process,         /* init process */
    NULL,                                      /* init thread */
    NULL,                                      /* exit thread */
    ngx_http_streamtally_exit_process,         /* exit process */
    NULL,                                      /* exit master */
    NGX_MODULE_V1_PADDING
};


/* Per worker: the library context, the zone, the sessions this worker owns,
 * what it counted and not yet published, and the two timers. */
static streamtally_ctx_t                   *ngx_http_streamtally_ctx;
static ngx_http_streamtally_zone_t         *ngx_http_streamtally_zone;
static ngx_queue_t                          ngx_http_streamtally_owned;
static ngx_http_streamtally_local_table_t   ngx_http_streamtally_local;
static ngx_event_t                          ngx_http_streamtally_sweep_event;
static ngx_event_t                          ngx_http_streamtally_publish_event;


static void *
ngx_http_streamtally_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_streamtally_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_streamtally_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->common.interim = NGX_CONF_UNSET_MSEC;
    mcf->common.batch_size = NGX_CONF_UNSET_UINT;
    mcf->common.flush = NGX_CONF_UNSET_MSEC;
    mcf->common.spool_max_size = NGX_CONF_UNSET;
    mcf->zone_size = NGX_CONF_UNSET_SIZE;

    return mcf;
}


static char *
ngx_http_streamtally_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_streamtally_main_conf_t  *mcf = conf;

    ngx_streamtally_init_main_conf(&mcf->common);
    ngx_conf_init_size_value(mcf->zone_size, 10 * 1024 * 1024);

    return NGX_CONF_OK;
}


static void *
ngx_http_streamtally_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_streamtally_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_streamtally_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->enable = NGX_CONF_UNSET;
    lcf->protocol = NGX_CONF_UNSET;
    lcf->stream = NGX_CONF_UNSET_PTR;
    lcf->session_key = NGX_CONF_UNSET_PTR;
    lcf->session_timeout = NGX_CONF_UNSET_MSEC;
    lcf->token = NGX_CONF_UNSET_PTR;
    lcf->user_id = NGX_CONF_UNSET_PTR;
    lcf->tags = NGX_CONF_UNSET_PTR;

    return lcf;
}


static char *
ngx_http_streamtally_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_streamtally_loc_conf_t  *prev = parent;
    ngx_http_streamtally_loc_conf_t  *conf = child;

    ngx_http_streamtally_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->protocol, prev->protocol, -1);
    ngx_conf_merge_ptr_value(conf->stream, prev->stream, NULL);
    ngx_conf_merge_ptr_value(conf->session_key, prev->session_key, NULL);
    ngx_conf_merge_msec_value(conf->session_timeout, prev->session_timeout,
                              30000);
    ngx_conf_merge_ptr_value(conf->token, prev->token, NULL);
    ngx_conf_merge_ptr_value(conf->user_id, prev->user_id, NULL);
    ngx_conf_merge_ptr_value(conf->tags, prev->tags, NULL);

    if (conf->enable) {
        mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_streamtally_module);
        mcf->common.used = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_streamtally_set_protocol(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_streamtally_loc_conf_t  *lcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (lcf->protocol != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; ngx_http_streamtally_protocols[i].len; i++) {
        if (value[1].len == ngx_http_streamtally_protocols[i].len
            && ngx_strncasecmp(value[1].data,
                               ngx_http_streamtally_protocols[i].data,
                               value[1].len) == 0)
        {
            lcf->protocol = (ngx_int_t) i;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, expected "
                       "hls, dash, http-progressive, http-flv, rtmp, rtsp, "
                       "srt, webrtc, tcp, udp or other",
                       &value[1], &cmd->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_streamtally_set_tag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_streamtally_loc_conf_t  *lcf = conf;

    ngx_str_t                          *value;
    ngx_http_streamtally_tag_t         *tag;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    if (ngx_streamtally_check_tag_name(cf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (lcf->tags == NGX_CONF_UNSET_PTR) {
        lcf->tags = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_http_streamtally_tag_t));
        if (lcf->tags == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    tag = ngx_array_push(lcf->tags);
    if (tag == NULL) {
        return NGX_CONF_ERROR;
    }

    tag->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &tag->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_streamtally_set_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char    *rv, *p = conf;
    size_t   size;

    rv = ngx_streamtally_conf_set_size(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    size = *(size_t *) (p + cmd->offset);
    if (size < 8 * ngx_pagesize) {
        ngx_str_t  *value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "expected at least %uz bytes (e.g. 1m)",
                           &value[1], &cmd->name, 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_streamtally_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                          name = ngx_string("streamtally");
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_streamtally_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_streamtally_module);

    if (ngx_streamtally_check_main_conf(cf, &mcf->common, "http") != NGX_OK) {
        return NGX_ERROR;
    }

    if (!mcf->common.used) {
        return NGX_OK;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, mcf->zone_size,
                                          &ngx_http_streamtally_module);
    if (mcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (mcf->shm_zone->data == NULL) {
        mcf->shm_zone->data = ngx_pcalloc(cf->pool,
                                          sizeof(ngx_http_streamtally_zone_t));
        if (mcf->shm_zone->data == NULL) {
            return NGX_ERROR;
        }
    }
    mcf->shm_zone->init = ngx_http_streamtally_zone_init;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_streamtally_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_streamtally_init_process(ngx_cycle_t *cycle)
{
    ngx_http_streamtally_zone_t       *zone;
    ngx_http_streamtally_main_conf_t  *mcf;

    ngx_queue_init(&ngx_http_streamtally_owned);

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_streamtally_module);
    if (mcf == NULL || !mcf->common.used || mcf->shm_zone == NULL) {
        return NGX_OK;
    }

    /* A spool that cannot open must not stop nginx from serving media. */
    if (ngx_streamtally_ctx_create(cycle, &mcf->common,
                                   &ngx_http_streamtally_ctx)
        != NGX_OK)
    {
        return NGX_OK;
    }

    zone = mcf->shm_zone->data;
    ngx_http_streamtally_zone = zone;

    /*
     * A worker started because another was killed finds that one's entries
     * first: their sessions are recovered from the spool, and the viewers'
     * next requests must start new sessions rather than feed dead entries.
     */
    ngx_shmtx_lock(&zone->shpool->mutex);
    (void) ngx_http_streamtally_zone_reap_dead_locked(zone, cycle->log);
    ngx_http_streamtally_zone_register_locked(zone, ngx_pid);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (ngx_http_streamtally_local_init(&ngx_http_streamtally_local,
                                        cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_streamtally_publish_event.handler =
        ngx_http_streamtally_publish_handler;
    ngx_http_streamtally_publish_event.log = cycle->log;
    ngx_http_streamtally_publish_event.cancelable = 1;

    ngx_http_streamtally_sweep_event.handler =
        ngx_http_streamtally_sweep_handler;
    ngx_http_streamtally_sweep_event.log = cycle->log;
    ngx_http_streamtally_sweep_event.data = zone;
    /* the timer must not keep a gracefully exiting worker alive */
    ngx_http_streamtally_sweep_event.cancelable = 1;
    ngx_add_timer(&ngx_http_streamtally_sweep_event,
                  NGX_HTTP_STREAMTALLY_SWEEP_MS);

    return NGX_OK;
}


static void
ngx_http_streamtally_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_streamtally_zone_t  *zone;

    if (ngx_http_streamtally_ctx == NULL) {
        return;
    }

    zone = ngx_http_streamtally_zone;

    /*
     * What this worker counted goes to the shared table now; then it waits
     * for the other workers to publish what they counted of its sessions
     * (their timers, or their own exit, within the grace) before it closes
     * them — else their last requests would reach a closed session.
     */
    ngx_http_streamtally_publish_handler(&ngx_http_streamtally_publish_event);

    if (!ngx_queue_empty(&ngx_http_streamtally_owned)) {
        ngx_msleep(NGX_HTTP_STREAMTALLY_GRACE_MS);
    }

    /*
     * This worker's sessions end here ("server"): their entries leave the
     * shared table, so a viewer who goes on (e.g. after a reload) starts a
     * new session in a new worker — nothing counted twice, nothing lost.
     */
    ngx_http_streamtally_sweep(1);
    ngx_http_streamtally_local_free(&ngx_http_streamtally_local);

    ngx_shmtx_lock(&zone->shpool->mutex);
    ngx_http_streamtally_zone_unregister_locked(zone, ngx_pid);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    streamtally_ctx_destroy(ngx_http_streamtally_ctx,
                            NGX_STREAMTALLY_EXIT_FLUSH_MS);
    ngx_http_streamtally_ctx = NULL;
}


static int64_t
ngx_http_streamtally_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


static ngx_int_t
ngx_http_streamtally_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                        status;
    ngx_http_streamtally_hit_t        hit;
    ngx_http_streamtally_entry_t     *entry;
    ngx_http_streamtally_local_t     *known;
    ngx_http_streamtally_loc_conf_t  *lcf;

    if (ngx_http_streamtally_ctx == NULL) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_streamtally_module);
    if (!lcf->enable) {
        return NGX_OK;
    }

    if (ngx_http_streamtally_session_key(r, lcf, hit.md5) != NGX_OK) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    hit.timeout = lcf->session_timeout;
    hit.now_ms = ngx_http_streamtally_now_ms();
    /* what this request moved: the response incl. its header, the request */
    hit.bytes_out = (uint64_t) r->connection->sent;
    hit.bytes_in = (uint64_t) r->request_length;
    hit.requests = 1;
    /* a refused or missing playlist is no view; an error inside a running
     * session still counts its bytes */
    hit.may_create = (status > 0 && status < 400);

    /*
     * A viewer this worker knows, whose session goes on: counted here, no
     * lock. The shared entry's serial is read without the lock (a cache line
     * that changes only when entries come and go): a session that ended —
     * its owner exited or was killed, it was evicted — sends the request to
     * the shared table, which starts a new one with this request's identity.
     * One that ends between this read and the publish is handled there.
     */
    known = ngx_http_streamtally_local_find(&ngx_http_streamtally_local,
                                            hit.md5);
    if (known != NULL && known->shared != NULL
        && hit.now_ms - known->last_seen_ms < (int64_t) known->timeout
        && *(volatile uint64_t *) &known->shared->serial == known->serial)
    {
        ngx_http_streamtally_local_count(&ngx_http_streamtally_local, known,
                                         &hit);
        if (!known->shared->node.data) {
            known->shared->node.data = 1;  /* touched: written once per
                                            * eviction pass */
        }
        if (!ngx_http_streamtally_publish_event.timer_set) {
            ngx_add_timer(&ngx_http_streamtally_publish_event,
                          NGX_HTTP_STREAMTALLY_PUBLISH_MS);
        }
        return NGX_OK;
    }

    switch (ngx_http_streamtally_count_shared(&hit, known, &entry)) {
    case NGX_HTTP_STREAMTALLY_CREATED:
    case NGX_HTTP_STREAMTALLY_ADOPTED:
        return ngx_http_streamtally_open(r, lcf, &hit, entry->serial);

    case NGX_HTTP_STREAMTALLY_NO_MEMORY:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "streamtally: session table full, request not "
                      "accounted; increase \"streamtally_zone\"");
        return NGX_OK;

    default:
        return NGX_OK;
    }
}


/*
 * Counts a request in the shared table (what it holds of the viewer, known,
 * is published first) and remembers the viewer's entry in this worker.
 * On CREATED / ADOPTED, hit->bytes_* become the entry's totals.
 */
static ngx_int_t
ngx_http_streamtally_count_shared(ngx_http_streamtally_hit_t *hit,
    ngx_http_streamtally_local_t *known, ngx_http_streamtally_entry_t **entry)
{
    ngx_int_t                      rc;
    ngx_http_streamtally_zone_t   *zone;

    zone = ngx_http_streamtally_zone;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (known != NULL && known->requests) {
        ngx_http_streamtally_local_publish_one_locked(
            &ngx_http_streamtally_local, known, zone);
    }

    rc = ngx_http_streamtally_zone_hit_locked(zone, hit, entry);

    if (rc == NGX_HTTP_STREAMTALLY_CREATED
        || rc == NGX_HTTP_STREAMTALLY_ADOPTED)
    {
        hit->bytes_in = (*entry)->bytes_in;
        hit->bytes_out = (*entry)->bytes_out;
    }

    /* an orphan (owner 0) is left for a request that may adopt it */
    if ((rc == NGX_HTTP_STREAMTALLY_COUNTED && (*entry)->owner != 0)
        || rc == NGX_HTTP_STREAMTALLY_CREATED
        || rc == NGX_HTTP_STREAMTALLY_ADOPTED)
    {
        (void) ngx_http_streamtally_local_insert(&ngx_http_streamtally_local,
                                                 hit->md5, *entry,
                                                 hit->now_ms, hit->timeout);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* Hands what this worker counted to the shared table (the timer, and exit). */
static void
ngx_http_streamtally_publish_handler(ngx_event_t *ev)
{
    ngx_http_streamtally_zone_t  *zone;

    zone = ngx_http_streamtally_zone;

    ngx_shmtx_lock(&zone->shpool->mutex);
    ngx_http_streamtally_local_publish_locked(&ngx_http_streamtally_local,
                                              zone);
    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* Evaluates an optional complex value into a library string (NULL: null). */
static ngx_int_t
ngx_http_streamtally_value(ngx_http_request_t *r, ngx_http_complex_value_t *cv,
    ngx_str_t *out)
{
    ngx_str_null(out);

    if (cv == NULL) {
        return NGX_OK;
    }

    return ngx_http_complex_value(r, cv, out);
}


static ngx_int_t
ngx_http_streamtally_open(ngx_http_request_t *r,
    ngx_http_streamtally_loc_conf_t *lcf, ngx_http_streamtally_hit_t *hit,
    uint64_t serial)
{
    int                              rc;
    u_char                          *p;
    ngx_str_t                        stream, token, user_id, ua, referer;
    ngx_str_t                        tag_value;
    ngx_uint_t                       i;
    streamtally_tag_t               *tags;
    ngx_http_streamtally_tag_t      *tag;
    streamtally_session_t           *session;
    streamtally_session_info_t       info;
    ngx_http_streamtally_owned_t    *owned;
    ngx_http_streamtally_entry_t    *e;

    ngx_memzero(&info, sizeof(streamtally_session_info_t));
    session = NULL;
    owned = NULL;

    if (ngx_http_streamtally_value(r, lcf->token, &token) != NGX_OK
        || ngx_http_streamtally_value(r, lcf->user_id, &user_id) != NGX_OK)
    {
        goto failed;
    }

    if (lcf->stream != NULL) {
        if (ngx_http_complex_value(r, lcf->stream, &stream) != NGX_OK) {
            goto failed;
        }
    } else {
        ngx_http_streamtally_stream_of(&r->uri, &stream);
    }

    ngx_str_null(&ua);
    if (r->headers_in.user_agent) {
        ua = r->headers_in.user_agent->value;
    }

    ngx_str_null(&referer);
    if (r->headers_in.referer) {
        referer = r->headers_in.referer->value;
    }

    info.type = STREAMTALLY_PLAY;
    info.protocol = (streamtally_protocol_t)
        (lcf->protocol >= 0 ? lcf->protocol
                            : ngx_http_streamtally_protocol_of(&r->uri));
    info.stream = ngx_streamtally_str(&stream);
    info.client_ip = ngx_streamtally_str(&r->connection->addr_text);
    info.user_agent = ngx_streamtally_str(&ua);
    info.referer = ngx_streamtally_str(&referer);
    info.token = ngx_streamtally_str(&token);
    info.user_id = ngx_streamtally_str(&user_id);
    /* the session began when its first request did */
    info.started_at_ms = (int64_t) r->start_sec * 1000 + r->start_msec;

    if (lcf->tags != NULL && lcf->tags->nelts) {
        tags = ngx_palloc(r->pool, lcf->tags->nelts * sizeof(streamtally_tag_t));
        if (tags == NULL) {
            goto failed;
        }

        tag = lcf->tags->elts;
        for (i = 0; i < lcf->tags->nelts; i++) {
            if (ngx_http_complex_value(r, &tag[i].value, &tag_value) != NGX_OK) {
                goto failed;
            }
            /* the name is NUL-terminated by nginx's parser, the value
             * is not: the library's tags are C strings */
            p = ngx_pnalloc(r->pool, tag_value.len + 1);
            if (p == NULL) {
                goto failed;
            }
            *ngx_cpymem(p, tag_value.data, tag_value.len) = '\0';
            tags[i].key = (const char *) tag[i].name.data;
            tags[i].value = (const char *) p;
        }

        info.tags = tags;
        info.n_tags = lcf->tags->nelts;
    }

    owned = ngx_alloc(sizeof(ngx_http_streamtally_owned_t), r->connection->log);
    if (owned == NULL) {
        goto failed;
    }

    rc = streamtally_session_open(ngx_http_streamtally_ctx, &info, &session);
    if (rc != STREAMTALLY_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "streamtally: cannot open a session for \"%V\" "
                      "(error %d)", &stream, rc);
        goto failed;
    }

    ngx_memcpy(owned->md5, hit->md5, 16);
    owned->serial = serial;
    owned->bytes_in = hit->bytes_in;
    owned->bytes_out = hit->bytes_out;
    owned->last_seen_ms = hit->now_ms;
    owned->session = session;
    ngx_queue_insert_tail(&ngx_http_streamtally_owned, &owned->queue);

    streamtally_session_set_bytes(session, hit->bytes_in, hit->bytes_out);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "streamtally: session %s for \"%V\"",
                   streamtally_session_id(session), &stream);

    return NGX_OK;

failed:

    /* no session behind it: the entry must not keep collecting */
    ngx_shmtx_lock(&ngx_http_streamtally_zone->shpool->mutex);
    e = ngx_http_streamtally_zone_find_locked(ngx_http_streamtally_zone,
                                              hit->md5, serial);
    if (e != NULL) {
        ngx_http_streamtally_zone_delete_locked(ngx_http_streamtally_zone, e);
    }
    ngx_shmtx_unlock(&ngx_http_streamtally_zone->shpool->mutex);

    if (owned != NULL) {
        ngx_free(owned);
    }

    return NGX_OK;
}


/*
 * The MD5 of the evaluated streamtally_session_key; by default the client
 * address, the User-Agent and the token, separated by bytes none of them can
 * contain unescaped.
 */
static ngx_int_t
ngx_http_streamtally_session_key(ngx_http_request_t *r,
    ngx_http_streamtally_loc_conf_t *lcf, u_char md5[16])
{
    ngx_str_t   key, token;
    ngx_md5_t   ctx;

    ngx_md5_init(&ctx);

    if (lcf->session_key != NULL) {
        if (ngx_http_complex_value(r, lcf->session_key, &key) != NGX_OK) {
            return NGX_ERROR;
        }
        ngx_md5_update(&ctx, key.data, key.len);

    } else {
        if (ngx_http_streamtally_value(r, lcf->token, &token) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_md5_update(&ctx, r->connection->addr_text.data,
                       r->connection->addr_text.len);
        ngx_md5_update(&ctx, "\n", 1);
        if (r->headers_in.user_agent) {
            ngx_md5_update(&ctx, r->headers_in.user_agent->value.data,
                           r->headers_in.user_agent->value.len);
        }
        ngx_md5_update(&ctx, "\n", 1);
        ngx_md5_update(&ctx, token.data, token.len);
    }

    ngx_md5_final(md5, &ctx);

    return NGX_OK;
}


/* hls: .m3u8 playlists, .ts/.aac/.mp4 segments; dash: .mpd and its fMP4
 * segments; http-flv: .flv; anything else is progressive download. */
static ngx_int_t
ngx_http_streamtally_protocol_of(ngx_str_t *uri)
{
    static const struct {
        ngx_str_t   ext;
        ngx_int_t   protocol;
    } map[] = {
        { ngx_string(".m3u8"), STREAMTALLY_PROTO_HLS },
        { ngx_string(".ts"), STREAMTALLY_PROTO_HLS },
        { ngx_string(".aac"), STREAMTALLY_PROTO_HLS },
        { ngx_string(".mpd"), STREAMTALLY_PROTO_DASH },
        { ngx_string(".m4s"), STREAMTALLY_PROTO_DASH },
        { ngx_string(".m4v"), STREAMTALLY_PROTO_DASH },
        { ngx_string(".m4a"), STREAMTALLY_PROTO_DASH },
        { ngx_string(".flv"), STREAMTALLY_PROTO_HTTP_FLV },
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (uri->len > map[i].ext.len
            && ngx_strncasecmp(uri->data + uri->len - map[i].ext.len,
                               map[i].ext.data, map[i].ext.len) == 0)
        {
            return map[i].protocol;
        }
    }

    return STREAMTALLY_PROTO_HTTP_PROGRESSIVE;
}


/*
 * The stream a URI belongs to, as nginx-rtmp's HLS/DASH name their files:
 * "/hls/cam.m3u8", "/hls/cam-12.ts", "/dash/cam-init.m4v" -> "hls/cam",
 * "dash/cam"; nested layouts "/hls/cam/index.m3u8", "/hls/cam/12.ts" ->
 * "hls/cam". Points into the URI, no copy.
 */
static void
ngx_http_streamtally_stream_of(ngx_str_t *uri, ngx_str_t *stream)
{
    u_char  *start, *end, *base, *p;

    start = uri->data;
    end = uri->data + uri->len;

    while (start < end && *start == '/') {
        start++;
    }

    base = end;
    while (base > start && base[-1] != '/') {
        base--;
    }

    /* drop the extension */
    for (p = end; p > base; p--) {
        if (p[-1] == '.') {
            end = p - 1;
            break;
        }
    }

    /* a nested playlist or numbered segment names its directory */
    for (p = base; p < end && *p >= '0' && *p <= '9'; p++) { /* void */ }

    if (base > start
        && (p == end
            || ((size_t) (end - base) == 5 && ngx_strncmp(base, "index", 5) == 0)))
    {
        stream->data = start;
        stream->len = base - 1 - start;
        return;
    }

    /* "-init" / "-raw", or a "-<number>" / "_<number>" segment suffix */
    if (end - base > 5 && ngx_strncmp(end - 5, "-init", 5) == 0) {
        end -= 5;

    } else if (end - base > 4 && ngx_strncmp(end - 4, "-raw", 4) == 0) {
        end -= 4;

    } else {
        for (p = end; p > base && p[-1] >= '0' && p[-1] <= '9'; p--) {
            /* void */
        }

        if (p < end && p - 1 > base && (p[-1] == '-' || p[-1] == '_')) {
            end = p - 1;
        }
    }

    stream->data = start;
    stream->len = end - start;
}


static void
ngx_http_streamtally_sweep_handler(ngx_event_t *ev)
{
    ngx_http_streamtally_sweep(0);

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_HTTP_STREAMTALLY_SWEEP_MS);
    }
}


/*
 * Once a second, per worker: brings the shared totals of this worker's sessions
 * into the library, closes the silent ones ("timeout") and the evicted ones,
 * and forgets the entries of workers that died. With closing_all (worker exit)
 * every session of this worker is closed with "server".
 */
static void
ngx_http_streamtally_sweep(ngx_flag_t closing_all)
{
    int64_t                          now, ended_at;
    ngx_queue_t                      done, *q, *next;
    ngx_http_streamtally_zone_t     *zone;
    ngx_http_streamtally_entry_t    *e;
    ngx_http_streamtally_owned_t    *owned;
    streamtally_end_reason_t         reason;

    zone = ngx_http_streamtally_zone;
    now = ngx_http_streamtally_now_ms();
    ngx_queue_init(&done);

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* this worker's own hits first: its sessions' totals must hold them */
    ngx_http_streamtally_local_sweep_locked(&ngx_http_streamtally_local,
                                            zone, now);
    (void) ngx_http_streamtally_zone_reap_dead_locked(zone,
                                                      ngx_cycle->log);
    ngx_http_streamtally_zone_reap_orphans_locked(zone, now,
        NGX_HTTP_STREAMTALLY_GRACE_MS, ngx_cycle->log);

    for (q = ngx_queue_head(&ngx_http_streamtally_owned);
         q != ngx_queue_sentinel(&ngx_http_streamtally_owned);
         q = next)
    {
        next = ngx_queue_next(q);
        owned = ngx_queue_data(q, ngx_http_streamtally_owned_t, queue);

        e = ngx_http_streamtally_zone_find_locked(zone, owned->md5,
                                                  owned->serial);
        if (e == NULL) {
            /* evicted: the final totals wait in the ring (or, if the ring
             * overflowed, the last sweep's totals are the best we have);
             * the session ended with its last request */
            (void) ngx_http_streamtally_zone_take_evicted_locked(zone,
                       ngx_pid, owned->serial, &owned->bytes_in,
                       &owned->bytes_out, &owned->last_seen_ms);
            reason = STREAMTALLY_END_SERVER;
            ended_at = owned->last_seen_ms;

        } else {
            owned->bytes_in = e->bytes_in;
            owned->bytes_out = e->bytes_out;
            owned->last_seen_ms = e->last_seen_ms;

            if (closing_all) {
                reason = STREAMTALLY_END_SERVER;
                ended_at = 0;

            } else if (now - e->last_seen_ms
                       >= (int64_t) (e->timeout + NGX_HTTP_STREAMTALLY_GRACE_MS))
            {
                /* over at its last request, noticed only now (after every
                 * worker published what it counted) */
                reason = STREAMTALLY_END_TIMEOUT;
                ended_at = e->last_seen_ms;

            } else {
                continue;
            }

            ngx_http_streamtally_zone_delete_locked(zone, e);
        }

        /* the library calls happen after the zone is unlocked */
        owned->end_reason = reason;
        owned->ended_at_ms = ended_at;
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&done, q);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&ngx_http_streamtally_owned);
         q != ngx_queue_sentinel(&ngx_http_streamtally_owned);
         q = ngx_queue_next(q))
    {
        owned = ngx_queue_data(q, ngx_http_streamtally_owned_t, queue);
        streamtally_session_set_bytes(owned->session, owned->bytes_in,
                                      owned->bytes_out);
    }

    while (!ngx_queue_empty(&done)) {
        q = ngx_queue_head(&done);
        ngx_queue_remove(q);
        owned = ngx_queue_data(q, ngx_http_streamtally_owned_t, queue);

        streamtally_session_set_bytes(owned->session, owned->bytes_in,
                                      owned->bytes_out);
        (void) streamtally_session_close_at(owned->session, owned->end_reason,
                                            owned->ended_at_ms);
        streamtally_session_free(owned->session);
        ngx_free(owned);
    }
}
