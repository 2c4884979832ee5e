/*
 * Main-level settings shared by the RTMP and HTTP modules; see the header.
 */

#include "ngx_streamtally_main_conf.h"


static void ngx_streamtally_log(void *user, streamtally_log_level_t level,
    const char *message);
static char *ngx_streamtally_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    const char *expected);


void *
ngx_streamtally_create_main_conf(ngx_conf_t *cf)
{
    ngx_streamtally_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_streamtally_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->interim = NGX_CONF_UNSET_MSEC;
    mcf->batch_size = NGX_CONF_UNSET_UINT;
    mcf->flush = NGX_CONF_UNSET_MSEC;
    mcf->spool_max_size = NGX_CONF_UNSET;

    return mcf;
}


void
ngx_streamtally_init_main_conf(ngx_streamtally_main_conf_t *mcf)
{
    ngx_conf_init_msec_value(mcf->interim, 60000);
    ngx_conf_init_uint_value(mcf->batch_size, 500);
    ngx_conf_init_msec_value(mcf->flush, 5000);
    if (mcf->spool_max_size == NGX_CONF_UNSET) {
        mcf->spool_max_size = 1024 * 1024 * 1024;
    }
}


ngx_int_t
ngx_streamtally_check_main_conf(ngx_conf_t *cf,
    ngx_streamtally_main_conf_t *mcf, const char *block)
{
    if (mcf->used && mcf->spool.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"streamtally on\" in %s{} needs "
                           "\"streamtally_spool\" at the %s{} level",
                           block, block);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The spool file: relative paths are taken from nginx's prefix, like other
 * nginx paths, because a worker's working directory is not a stable anchor.
 */
char *
ngx_streamtally_conf_set_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *p = conf;
    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);
    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (value[1].len == 0) {
        return ngx_streamtally_invalid(cf, cmd, "a file path");
    }

    *field = value[1];
    if (ngx_conf_full_name(cf->cycle, field, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_streamtally_conf_set_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *p = conf;
    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);
    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (!(value[1].len > 7
          && ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) == 0)
        && !(value[1].len > 8
             && ngx_strncasecmp(value[1].data, (u_char *) "https://", 8) == 0))
    {
        return ngx_streamtally_invalid(cf, cmd,
                   "an http:// or https:// base URL of the collector");
    }

    *field = value[1];

    return NGX_CONF_OK;
}


char *
ngx_streamtally_conf_set_server_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;
    if (value[1].len == 0 || value[1].len > 64) {
        return ngx_streamtally_invalid(cf, cmd, "1 to 64 bytes");
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


/*
 * The standard nginx slots answer "invalid value" without the value; these
 * wrappers keep the slots' parsing (units "10s", "64m") and name both.
 */
char *
ngx_streamtally_conf_set_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv, *p = conf;
    ngx_msec_t  *field;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);
    if (rv == NGX_CONF_OK) {
        field = (ngx_msec_t *) (p + cmd->offset);
        if (*field == 0) {
            return ngx_streamtally_invalid(cf, cmd,
                                           "a time greater than 0, e.g. 10s");
        }
        return rv;
    }

    if (ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    return ngx_streamtally_invalid(cf, cmd, "a time such as 500ms, 10s, 1m");
}


char *
ngx_streamtally_conf_set_size(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *rv;

    rv = ngx_conf_set_size_slot(cf, cmd, conf);
    if (rv == NGX_CONF_OK || ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    return ngx_streamtally_invalid(cf, cmd, "a size such as 64k or 1m");
}


char *
ngx_streamtally_conf_set_off(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *rv;

    rv = ngx_conf_set_off_slot(cf, cmd, conf);
    if (rv == NGX_CONF_OK || ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    return ngx_streamtally_invalid(cf, cmd, "a size such as 64m or 1g");
}


char *
ngx_streamtally_conf_set_count(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *p = conf;
    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t  *field;

    field = (ngx_uint_t *) (p + cmd->offset);
    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n < 1 || n > 100000) {
        return ngx_streamtally_invalid(cf, cmd, "a number from 1 to 100000");
    }

    *field = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_streamtally_check_tag_name(ngx_conf_t *cf, ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len == 0 || name->len > 64) {
        goto invalid;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
        {
            goto invalid;
        }
    }

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid tag name \"%V\" in \"streamtally_tag\" "
                       "directive, expected 1 to 64 of [A-Za-z0-9_.-]", name);
    return NGX_ERROR;
}


ngx_int_t
ngx_streamtally_ctx_create(ngx_cycle_t *cycle,
    ngx_streamtally_main_conf_t *mcf, streamtally_ctx_t **out)
{
    int                   rc;
    u_char               *p;
    streamtally_config_t  config;

    /*
     * The library wants NUL-terminated strings; nginx's ngx_str_t from the
     * configuration are not. Copies live in the cycle pool, as long as the
     * worker.
     */
    ngx_memzero(&config, sizeof(streamtally_config_t));

#define NGX_STREAMTALLY_CSTR(field, str)                                      \
    if ((str).len) {                                                          \
        p = ngx_pnalloc(cycle->pool, (str).len + 1);                          \
        if (p == NULL) {                                                      \
            return NGX_ERROR;                                                 \
        }                                                                     \
        *ngx_cpymem(p, (str).data, (str).len) = '\0';                         \
        config.field = (const char *) p;                                      \
    }

    NGX_STREAMTALLY_CSTR(spool_path, mcf->spool);
    NGX_STREAMTALLY_CSTR(collector_url, mcf->collector);
    NGX_STREAMTALLY_CSTR(collector_token, mcf->collector_token);
    NGX_STREAMTALLY_CSTR(server_id, mcf->server_id);

#undef NGX_STREAMTALLY_CSTR

    config.interim_ms = mcf->interim;
    config.batch_size = (uint32_t) mcf->batch_size;
    config.flush_ms = mcf->flush;
    config.spool_max_bytes = (uint64_t) mcf->spool_max_size;
    config.log = ngx_streamtally_log;
    config.log_user = NULL;

    rc = streamtally_ctx_create(&config, out);
    if (rc != STREAMTALLY_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "streamtally: cannot open spool \"%V\" (error %d); "
                      "sessions of this worker are not accounted",
                      &mcf->spool, rc);
        *out = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The library logs from its writer/uploader threads too; ngx_log_error() only
 * formats on the stack and write()s, which nginx's own thread pool relies on.
 */
static void
ngx_streamtally_log(void *user, streamtally_log_level_t level,
    const char *message)
{
    ngx_uint_t  nlevel;

    switch (level) {
    case STREAMTALLY_LOG_ERROR:
        nlevel = NGX_LOG_ERR;
        break;
    case STREAMTALLY_LOG_WARN:
        nlevel = NGX_LOG_WARN;
        break;
    case STREAMTALLY_LOG_INFO:
        nlevel = NGX_LOG_INFO;
        break;
    default:
        nlevel = NGX_LOG_DEBUG;
        break;
    }

    ngx_log_error(nlevel, ngx_cycle->log, 0, "streamtally: %s", message);
}


static char *
ngx_streamtally_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    const char *expected)
{
    ngx_str_t  *value;

    value = cf->args->elts;
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, expected %s",
                       &value[1], &cmd->name, expected);

    return NGX_CONF_ERROR;
}
