/*
 * 64-bit byte counting for RTMP sessions.
 *
 * nginx-rtmp's s->in_bytes / s->out_bytes are 32-bit and in_bytes is reset
 * near 3.75 GB, so they cannot feed a session's totals. Instead the
 * connection's recv/send function pointers (all nginx-rtmp reads and writes go
 * through c->recv and c->send) are wrapped: the wrapper calls the original and
 * adds what it moved to the libstreamtally session — one relaxed atomic add,
 * O(1), nothing else on the packet path.
 */

#ifndef NGX_RTMP_STREAMTALLY_IO_H_INCLUDED
#define NGX_RTMP_STREAMTALLY_IO_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>

#include <streamtally.h>


typedef struct {
    ngx_recv_pt              recv;      /* the connection's originals */
    ngx_send_pt              send;
    streamtally_session_t   *session;   /* NULL: counting off */
} ngx_rtmp_streamtally_io_t;


/*
 * Finds the counters of a connection. Defined by the module (through the
 * nginx-rtmp session's module context); a unit test defines its own.
 */
ngx_rtmp_streamtally_io_t *ngx_rtmp_streamtally_io_of(ngx_connection_t *c);

/* Routes c's reads and writes through the counting wrappers (idempotent). */
void ngx_rtmp_streamtally_io_attach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c);

/* Restores c's original functions; nothing is counted afterwards. */
void ngx_rtmp_streamtally_io_detach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c);

#endif /* NGX_RTMP_STREAMTALLY_IO_H_INCLUDED */
