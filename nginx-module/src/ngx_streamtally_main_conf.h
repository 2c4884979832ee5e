/*
 * Settings shared by the RTMP and the HTTP module: the main-level directives of
 * SPEC (streamtally_spool, _collector, _collector_token, _server_id, _interim,
 * _batch_size, _flush, _spool_max_size), their parsing with nginx units and
 * errors that name the directive and the bad value, and the per-worker
 * libstreamtally context built from them.
 *
 * Both modules compile this file in (each .so has its own hidden copy); the
 * library shares one context per (spool, collector) inside a worker, so an RTMP
 * and an HTTP block with the same spool write through one connection.
 */

#ifndef NGX_STREAMTALLY_MAIN_CONF_H_INCLUDED
#define NGX_STREAMTALLY_MAIN_CONF_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>

#include <streamtally.h>


typedef struct {
    ngx_str_t            spool;
    ngx_str_t            collector;
    ngx_str_t            collector_token;
    ngx_str_t            server_id;
    ngx_msec_t           interim;
    ngx_uint_t           batch_size;
    ngx_msec_t           flush;
    off_t                spool_max_size;   /* off_t: nginx parses "1g" only for offsets */

    /* set while merging when some location/application says "streamtally on" */
    ngx_flag_t           used;
} ngx_streamtally_main_conf_t;


/* How long a worker's exit may wait for the final flush (open sessions are
 * closed with end_reason "server"; what is not uploaded stays spooled). */
#define NGX_STREAMTALLY_EXIT_FLUSH_MS  3000


/*
 * The main-level directives, for a module's command table. `type` is
 * NGX_RTMP_MAIN_CONF or NGX_HTTP_MAIN_CONF, `offset` NGX_*_MAIN_CONF_OFFSET.
 */
#define NGX_STREAMTALLY_MAIN_COMMANDS(type, offset)                           \
    { ngx_string("streamtally_spool"),                                        \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_path, offset,             \
      offsetof(ngx_streamtally_main_conf_t, spool), NULL },                   \
    { ngx_string("streamtally_collector"),                                    \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_url, offset,              \
      offsetof(ngx_streamtally_main_conf_t, collector), NULL },               \
    { ngx_string("streamtally_collector_token"),                              \
      type|NGX_CONF_TAKE1, ngx_conf_set_str_slot, offset,                     \
      offsetof(ngx_streamtally_main_conf_t, collector_token), NULL },         \
    { ngx_string("streamtally_server_id"),                                    \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_server_id, offset,        \
      offsetof(ngx_streamtally_main_conf_t, server_id), NULL },               \
    { ngx_string("streamtally_interim"),                                      \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_msec, offset,             \
      offsetof(ngx_streamtally_main_conf_t, interim), NULL },                 \
    { ngx_string("streamtally_batch_size"),                                   \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_count, offset,            \
      offsetof(ngx_streamtally_main_conf_t, batch_size), NULL },              \
    { ngx_string("streamtally_flush"),                                        \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_msec, offset,             \
      offsetof(ngx_streamtally_main_conf_t, flush), NULL },                   \
    { ngx_string("streamtally_spool_max_size"),                               \
      type|NGX_CONF_TAKE1, ngx_streamtally_conf_set_off, offset,              \
      offsetof(ngx_streamtally_main_conf_t, spool_max_size), NULL }


void *ngx_streamtally_create_main_conf(ngx_conf_t *cf);
/* Fills defaults (SPEC: interim 60s, batch 500, flush 5s, spool cap 1g). */
void ngx_streamtally_init_main_conf(ngx_streamtally_main_conf_t *mcf);
/* After the merges (postconfiguration): a spool is needed once a location or
 * application says "streamtally on". */
ngx_int_t ngx_streamtally_check_main_conf(ngx_conf_t *cf,
    ngx_streamtally_main_conf_t *mcf, const char *block);

char *ngx_streamtally_conf_set_path(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_server_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_streamtally_conf_set_count(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* A "NAME VALUE" pair kept by streamtally_tag (checked: names are
 * [A-Za-z0-9_.-]{1,64}, as the collector's tag.<key> dimension expects). */
ngx_int_t ngx_streamtally_check_tag_name(ngx_conf_t *cf, ngx_str_t *name);

/* Creates this worker's context (after fork: the library starts threads). */
ngx_int_t ngx_streamtally_ctx_create(ngx_cycle_t *cycle,
    ngx_streamtally_main_conf_t *mcf, streamtally_ctx_t **out);

/* An nginx string as the library's string view (no copy, no NUL needed). */
static ngx_inline streamtally_str_t
ngx_streamtally_str(ngx_str_t *s)
{
    streamtally_str_t  r;

    r.data = (s != NULL && s->len) ? (const char *) s->data : NULL;
    r.len = (s != NULL) ? s->len : 0;

    return r;
}

/* A present-but-empty value: the record says "" rather than null. */
#define NGX_STREAMTALLY_EMPTY_STR  ((streamtally_str_t) { "", 0 })

#endif /* NGX_STREAMTALLY_MAIN_CONF_H_INCLUDED */
