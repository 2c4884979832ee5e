/*
 * ngx_rtmp_streamtally_module: one StreamTally session per RTMP publish and
 * per RTMP play.
 *
 * Joins nginx-rtmp's publish / play / close_stream chains (like
 * ngx_rtmp_notify_module), opens a libstreamtally session with what nginx-rtmp
 * knows (peer address, app/name, flashVer, pageUrl, query args) and counts the
 * connection's bytes with 64-bit counters (ngx_rtmp_streamtally_io.c): bytes
 * in as they are read, bytes out from nginx's c->sent, handed to the library
 * once a second while this worker has sessions open, and at close. Interim
 * updates and spooling happen inside the library, on its threads.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include <ngx_rtmp.h>
#include <ngx_rtmp_cmd_module.h>

#include "ngx_streamtally_main_conf.h"
#include "ngx_rtmp_streamtally_io.h"


/* C0 + C1 + C2: what a client sends during the handshake, which nginx-rtmp's
 * in_bytes never counts (c->sent does include the server's S0 + S1 + S2). */
#define NGX_RTMP_STREAMTALLY_HANDSHAKE_IN  (1 + 1536 + 1536)

/* How often the bytes sent reach the library (interim updates read them). */
#define NGX_RTMP_STREAMTALLY_SYNC_MS       1000


typedef struct {
    ngx_flag_t                  enable;
    ngx_array_t                *tags;        /* ngx_keyval_t */
    ngx_str_t                   token_arg;
    ngx_str_t                   user_arg;
} ngx_rtmp_streamtally_app_conf_t;


typedef struct {
    ngx_rtmp_streamtally_io_t   io;          /* io.session: the open session */
    ngx_uint_t                  opened;      /* sessions on this connection */
    ngx_queue_t                 queue;       /* in ngx_rtmp_streamtally_sessions */
    ngx_connection_t           *connection;
} ngx_rtmp_streamtally_ctx_t;


static ngx_int_t ngx_rtmp_streamtally_postconfiguration(ngx_conf_t *cf);
static void *ngx_rtmp_streamtally_create_main_conf(ngx_conf_t *cf);
static char *ngx_rtmp_streamtally_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_rtmp_streamtally_create_app_conf(ngx_conf_t *cf);
static char *ngx_rtmp_streamtally_merge_app_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_rtmp_streamtally_tag(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_rtmp_streamtally_init_process(ngx_cycle_t *cycle);
static void ngx_rtmp_streamtally_exit_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_rtmp_streamtally_open(ngx_rtmp_session_t *s,
    streamtally_type_t type, u_char *name, u_char *args);
static void ngx_rtmp_streamtally_close(ngx_rtmp_session_t *s);
static void ngx_rtmp_streamtally_close_ctx(ngx_rtmp_streamtally_ctx_t *ctx,
    streamtally_end_reason_t reason);
static void ngx_rtmp_streamtally_cleanup(void *data);
static ngx_int_t ngx_rtmp_streamtally_arg(ngx_pool_t *pool, ngx_str_t *args,
    ngx_str_t *name, ngx_str_t *value);
static void ngx_rtmp_streamtally_sync_handler(ngx_event_t *ev);
static void ngx_rtmp_streamtally_sync_all(void);


/* nginx-rtmp's core module; its header does not declare it */
extern ngx_module_t                ngx_rtmp_module;

static ngx_rtmp_publish_pt         next_publish;
static ngx_rtmp_play_pt            next_play;
static ngx_rtmp_close_stream_pt    next_close_stream;

/* This worker's context; NULL when accounting is off or the spool failed. */
static streamtally_ctx_t          *ngx_rtmp_streamtally_ctx;

/* This worker's open sessions (ngx_rtmp_streamtally_ctx_t.queue), and the
 * timer that hands their bytes sent to the library, armed while any is open. */
static ngx_queue_t                 ngx_rtmp_streamtally_sessions;
static ngx_event_t                 ngx_rtmp_streamtally_sync_event;


static ngx_command_t  ngx_rtmp_streamtally_commands[] = {

    NGX_STREAMTALLY_MAIN_COMMANDS(NGX_RTMP_MAIN_CONF, NGX_RTMP_MAIN_CONF_OFFSET),

    { ngx_string("streamtally"),
      NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_RTMP_APP_CONF_OFFSET,
      offsetof(ngx_rtmp_streamtally_app_conf_t, enable),
      NULL },

    { ngx_string("streamtally_tag"),
      NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF|NGX_CONF_TAKE2,
      ngx_rtmp_streamtally_tag,
      NGX_RTMP_APP_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("streamtally_token_arg"),
      NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_RTMP_APP_CONF_OFFSET,
      offsetof(ngx_rtmp_streamtally_app_conf_t, token_arg),
      NULL },

    { ngx_string("streamtally_user_arg"),
      NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_RTMP_APP_CONF_OFFSET,
      offsetof(ngx_rtmp_streamtally_app_conf_t, user_arg),
      NULL },

      ngx_null_command
};


static ngx_rtmp_module_t  ngx_rtmp_streamtally_module_ctx = {
    NULL,                                      /* preconfiguration */
    ngx_rtmp_streamtally_postconfiguration,    /* postconfiguration */
    ngx_rtmp_streamtally_create_main_conf,     /* create main configuration */
    ngx_rtmp_streamtally_init_main_conf,       /* init main configuration */
    NULL,                                      /* create server configuration */
    NULL,                                      /* merge server configuration */
    ngx_rtmp_streamtally_create_app_conf,      /* create app configuration */
    ngx_rtmp_streamtally_merge_app_conf        /* merge app configuration */
};


ngx_module_t  ngx_rtmp_streamtally_module = {
    NGX_MODULE_V1,
    &ngx_rtmp_streamtally_module_ctx,          /* module context */
    ngx_rtmp_streamtally_commands,             /* module directives */
    NGX_RTMP_MODULE,                           /* module type */
    NULL,                                      /* init master */
    NULL,                                      /* init module */
    ngx_rtmp_streamtally_init_process,         /* init process */
    NULL,                                      /* init thread */
    NULL,                                      /* exit thread */
    ngx_rtmp_streamtally_exit_process,         /* exit process */
    NULL,                                      /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_rtmp_streamtally_create_main_conf(ngx_conf_t *cf)
{
    return ngx_streamtally_create_main_conf(cf);
}


static char *
ngx_rtmp_streamtally_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_streamtally_init_main_conf(conf);

    return NGX_CONF_OK;
}


static void *
ngx_rtmp_streamtally_create_app_conf(ngx_conf_t *cf)
{
    ngx_rtmp_streamtally_app_conf_t  *sacf;

    sacf = ngx_pcalloc(cf->pool, sizeof(ngx_rtmp_streamtally_app_conf_t));
    if (sacf == NULL) {
        return NULL;
    }

    sacf->enable = NGX_CONF_UNSET;
    sacf->tags = NGX_CONF_UNSET_PTR;

    return sacf;
}


static char *
ngx_rtmp_streamtally_merge_app_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_rtmp_streamtally_app_conf_t  *prev = parent;
    ngx_rtmp_streamtally_app_conf_t  *conf = child;

    ngx_streamtally_main_conf_t      *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->tags, prev->tags, NULL);
    ngx_conf_merge_str_value(conf->token_arg, prev->token_arg, "token");
    ngx_conf_merge_str_value(conf->user_arg, prev->user_arg, "user_id");

    if (conf->enable) {
        mcf = ngx_rtmp_conf_get_module_main_conf(cf,
                                                 ngx_rtmp_streamtally_module);
        mcf->used = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_rtmp_streamtally_tag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rtmp_streamtally_app_conf_t  *sacf = conf;

    ngx_str_t                        *value;
    ngx_keyval_t                     *kv;

    value = cf->args->elts;

    if (ngx_streamtally_check_tag_name(cf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (sacf->tags == NGX_CONF_UNSET_PTR) {
        sacf->tags = ngx_array_create(cf->pool, 4, sizeof(ngx_keyval_t));
        if (sacf->tags == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    kv = ngx_array_push(sacf->tags);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = value[1];
    kv->value = value[2];

    return NGX_CONF_OK;
}


/* The rtmp{} block's main conf of this module, NULL without an rtmp{} block. */
static ngx_streamtally_main_conf_t *
ngx_rtmp_streamtally_cycle_main_conf(ngx_cycle_t *cycle)
{
    ngx_rtmp_conf_ctx_t  *ctx;

    ctx = (ngx_rtmp_conf_ctx_t *) cycle->conf_ctx[ngx_rtmp_module.index];
    if (ctx == NULL) {
        return NULL;
    }

    return ctx->main_conf[ngx_rtmp_streamtally_module.ctx_index];
}


static ngx_int_t
ngx_rtmp_streamtally_init_process(ngx_cycle_t *cycle)
{
    ngx_streamtally_main_conf_t  *mcf;

    ngx_queue_init(&ngx_rtmp_streamtally_sessions);

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_rtmp_streamtally_cycle_main_conf(cycle);
    if (mcf == NULL || !mcf->used) {
        return NGX_OK;
    }

    /* A spool that cannot open must not stop nginx from serving media. */
    (void) ngx_streamtally_ctx_create(cycle, mcf, &ngx_rtmp_streamtally_ctx);

    ngx_rtmp_streamtally_sync_event.handler = ngx_rtmp_streamtally_sync_handler;
    ngx_rtmp_streamtally_sync_event.log = cycle->log;
    /* the timer must not keep a gracefully exiting worker alive */
    ngx_rtmp_streamtally_sync_event.cancelable = 1;

    return NGX_OK;
}


static void
ngx_rtmp_streamtally_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_rtmp_streamtally_ctx == NULL) {
        return;
    }

    /* Closes sessions still open ("server") with their last bytes, and
     * flushes, bounded. */
    ngx_rtmp_streamtally_sync_all();
    streamtally_ctx_destroy(ngx_rtmp_streamtally_ctx,
                            NGX_STREAMTALLY_EXIT_FLUSH_MS);
    ngx_rtmp_streamtally_ctx = NULL;
}


ngx_rtmp_streamtally_io_t *
ngx_rtmp_streamtally_io_of(ngx_connection_t *c)
{
    ngx_rtmp_session_t          *s;
    ngx_rtmp_streamtally_ctx_t  *ctx;

    /* nginx-rtmp keeps its session in c->data for the connection's life */
    s = c->data;
    ctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_streamtally_module);

    return &ctx->io;
}


static ngx_int_t
ngx_rtmp_streamtally_publish(ngx_rtmp_session_t *s, ngx_rtmp_publish_t *v)
{
    (void) ngx_rtmp_streamtally_open(s, STREAMTALLY_PUBLISH, v->name, v->args);

    return next_publish(s, v);
}


static ngx_int_t
ngx_rtmp_streamtally_play(ngx_rtmp_session_t *s, ngx_rtmp_play_t *v)
{
    (void) ngx_rtmp_streamtally_open(s, STREAMTALLY_PLAY, v->name, v->args);

    return next_play(s, v);
}


static ngx_int_t
ngx_rtmp_streamtally_close_stream(ngx_rtmp_session_t *s,
    ngx_rtmp_close_stream_t *v)
{
    /* nginx-rtmp calls this twice per stream (closeStream/deleteStream and
     * the disconnect); the first call closes, the second finds no session */
    ngx_rtmp_streamtally_close(s);

    return next_close_stream(s, v);
}


static ngx_int_t
ngx_rtmp_streamtally_open(ngx_rtmp_session_t *s, streamtally_type_t type,
    u_char *name, u_char *args)
{
    int                               rc;
    u_char                           *p;
    ngx_str_t                         stream, query, token, user;
    ngx_uint_t                        i;
    ngx_keyval_t                     *kv;
    ngx_connection_t                 *c;
    ngx_pool_cleanup_t               *cln;
    streamtally_tag_t                *tags;
    streamtally_session_t            *session;
    ngx_rtmp_streamtally_ctx_t       *ctx;
    streamtally_session_info_t        info;
    ngx_rtmp_streamtally_app_conf_t  *sacf;

    /* auto-pushed and relayed sessions are nginx talking to itself, not
     * clients; their viewers are accounted where they connect */
    if (ngx_rtmp_streamtally_ctx == NULL || s->auto_pushed || s->relay) {
        return NGX_OK;
    }

    sacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_streamtally_module);
    if (sacf == NULL || !sacf->enable) {
        return NGX_OK;
    }

    c = s->connection;

    ctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_streamtally_module);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(c->pool, sizeof(ngx_rtmp_streamtally_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        /* the context lives in the connection's pool and in the list of
         * open sessions: it leaves the list with the pool, whatever path
         * closed the connection */
        cln = ngx_pool_cleanup_add(c->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
        cln->handler = ngx_rtmp_streamtally_cleanup;
        cln->data = ctx;

        ctx->connection = c;
        ngx_rtmp_set_ctx(s, ctx, ngx_rtmp_streamtally_module);
    }

    /* a client that publishes/plays again without closing: one session each */
    ngx_rtmp_streamtally_close(s);

    stream.len = s->app.len + 1 + ngx_strlen(name);
    stream.data = ngx_pnalloc(c->pool, stream.len);
    if (stream.data == NULL) {
        return NGX_ERROR;
    }
    p = ngx_cpymem(stream.data, s->app.data, s->app.len);
    *p++ = '/';
    ngx_memcpy(p, name, ngx_strlen(name));

    /* token/user id: the play/publish args first, then the connect args
     * (clients put "?token=" after the stream name or after the app) */
    query.data = args;
    query.len = ngx_strlen(args);

    ngx_str_null(&token);
    if (ngx_rtmp_streamtally_arg(c->pool, &query, &sacf->token_arg, &token)
        != NGX_OK)
    {
        (void) ngx_rtmp_streamtally_arg(c->pool, &s->args, &sacf->token_arg,
                                        &token);
    }

    ngx_str_null(&user);
    if (ngx_rtmp_streamtally_arg(c->pool, &query, &sacf->user_arg, &user)
        != NGX_OK)
    {
        (void) ngx_rtmp_streamtally_arg(c->pool, &s->args, &sacf->user_arg,
                                        &user);
    }

    ngx_memzero(&info, sizeof(streamtally_session_info_t));
    info.type = type;
    info.protocol = STREAMTALLY_PROTO_RTMP;
    info.stream = ngx_streamtally_str(&stream);
    /* the peer; s->addr_text is the listen address */
    info.client_ip = ngx_streamtally_str(&c->addr_text);
    info.user_agent = ngx_streamtally_str(&s->flashver);
    info.referer = ngx_streamtally_str(&s->page_url);
    info.token = ngx_streamtally_str(&token);
    info.user_id = ngx_streamtally_str(&user);

    if (sacf->tags != NULL && sacf->tags->nelts) {
        tags = ngx_palloc(c->pool,
                          sacf->tags->nelts * sizeof(streamtally_tag_t));
        if (tags == NULL) {
            return NGX_ERROR;
        }

        kv = sacf->tags->elts;
        for (i = 0; i < sacf->tags->nelts; i++) {
            /* configuration strings are NUL-terminated by nginx's parser */
            tags[i].key = (const char *) kv[i].key.data;
            tags[i].value = (const char *) kv[i].value.data;
        }

        info.tags = tags;
        info.n_tags = sacf->tags->nelts;
    }

    rc = streamtally_session_open(ngx_rtmp_streamtally_ctx, &info, &session);
    if (rc != STREAMTALLY_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "streamtally: cannot open a session for \"%V\" "
                      "(error %d)", &stream, rc);
        return NGX_OK;
    }

    /*
     * The connection's first session also owns what came before it: the
     * handshake and connect (nginx-rtmp's in_bytes cannot have wrapped yet,
     * and c->sent is 64-bit and includes the server's handshake).
     */
    if (ctx->opened++ == 0) {
        streamtally_session_add_bytes(session,
            (uint64_t) s->in_bytes + NGX_RTMP_STREAMTALLY_HANDSHAKE_IN, 0);
        ctx->io.sent_base = 0;

    } else {
        ctx->io.sent_base = c->sent;
    }

    ctx->io.session = session;
    ngx_rtmp_streamtally_io_attach(&ctx->io, c);

    ngx_queue_insert_tail(&ngx_rtmp_streamtally_sessions, &ctx->queue);
    if (!ngx_rtmp_streamtally_sync_event.timer_set) {
        ngx_add_timer(&ngx_rtmp_streamtally_sync_event,
                      NGX_RTMP_STREAMTALLY_SYNC_MS);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_RTMP, c->log, 0,
                   "streamtally: session %s for \"%V\"",
                   streamtally_session_id(session), &stream);

    return NGX_OK;
}


static void
ngx_rtmp_streamtally_close(ngx_rtmp_session_t *s)
{
    ngx_rtmp_streamtally_ctx_t  *ctx;

    ctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_streamtally_module);
    if (ctx != NULL) {
        ngx_rtmp_streamtally_close_ctx(ctx, STREAMTALLY_END_CLIENT);
    }
}


/* Closes the open session of a connection, if any, with its final bytes. */
static void
ngx_rtmp_streamtally_close_ctx(ngx_rtmp_streamtally_ctx_t *ctx,
    streamtally_end_reason_t reason)
{
    streamtally_session_t  *session;

    if (ctx->io.session == NULL) {
        return;
    }

    ngx_rtmp_streamtally_io_sync(&ctx->io, ctx->connection);
    ngx_queue_remove(&ctx->queue);

    session = ctx->io.session;
    ctx->io.session = NULL;

    (void) streamtally_session_close(session, reason);
    streamtally_session_free(session);
}


/* The connection's pool goes: nginx-rtmp closes its streams first, so a
 * session still open here lost its connection some other way. */
static void
ngx_rtmp_streamtally_cleanup(void *data)
{
    ngx_rtmp_streamtally_close_ctx(data, STREAMTALLY_END_ERROR);
}


static void
ngx_rtmp_streamtally_sync_all(void)
{
    ngx_queue_t                 *q;
    ngx_rtmp_streamtally_ctx_t  *ctx;

    for (q = ngx_queue_head(&ngx_rtmp_streamtally_sessions);
         q != ngx_queue_sentinel(&ngx_rtmp_streamtally_sessions);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_rtmp_streamtally_ctx_t, queue);
        ngx_rtmp_streamtally_io_sync(&ctx->io, ctx->connection);
    }
}


static void
ngx_rtmp_streamtally_sync_handler(ngx_event_t *ev)
{
    ngx_rtmp_streamtally_sync_all();

    if (!ngx_queue_empty(&ngx_rtmp_streamtally_sessions)
        && !ngx_exiting && !ngx_terminate && !ngx_quit)
    {
        ngx_add_timer(ev, NGX_RTMP_STREAMTALLY_SYNC_MS);
    }
}


/*
 * The value of query argument `name` in "a=1&b=2", URI-unescaped, copied
 * into the pool. NGX_DECLINED when absent.
 */
static ngx_int_t
ngx_rtmp_streamtally_arg(ngx_pool_t *pool, ngx_str_t *args, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char  *p, *last, *end, *dst, *src;

    if (name->len == 0 || args->len == 0) {
        return NGX_DECLINED;
    }

    p = args->data;
    last = args->data + args->len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) > name->len
            && p[name->len] == '='
            && ngx_strncmp(p, name->data, name->len) == 0)
        {
            src = p + name->len + 1;
            value->data = ngx_pnalloc(pool, end - src);
            if (value->data == NULL) {
                return NGX_ERROR;
            }
            dst = value->data;
            ngx_unescape_uri(&dst, &src, end - (p + name->len + 1),
                             NGX_UNESCAPE_URI);
            value->len = dst - value->data;
            return NGX_OK;
        }

        p = end + 1;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_rtmp_streamtally_postconfiguration(ngx_conf_t *cf)
{
    ngx_streamtally_main_conf_t  *mcf;

    mcf = ngx_rtmp_conf_get_module_main_conf(cf, ngx_rtmp_streamtally_module);
    if (ngx_streamtally_check_main_conf(cf, mcf, "rtmp") != NGX_OK) {
        return NGX_ERROR;
    }

    next_publish = ngx_rtmp_publish;
    ngx_rtmp_publish = ngx_rtmp_streamtally_publish;

    next_play = ngx_rtmp_play;
    ngx_rtmp_play = ngx_rtmp_streamtally_play;

    next_close_stream = ngx_rtmp_close_stream;
    ngx_rtmp_close_stream = ngx_rtmp_streamtally_close_stream;

    return NGX_OK;
}
