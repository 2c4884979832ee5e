/*
 * 64-bit byte counting for RTMP sessions, with no work per packet sent.
 *
 * nginx-rtmp's s->in_bytes / s->out_bytes are 32-bit and in_bytes is reset
 * near 3.75 GB, so they cannot feed a session's totals.
 *  - Out: nginx's own c->sent is 64-bit and every nginx-rtmp write goes through
 *    c->send (ngx_unix_send), which adds to it. A session's bytes out are
 *    c->sent minus its value when the session began, handed to the library
 *    by ngx_rtmp_streamtally_io_sync() (the module calls it once a second and
 *    at close) — the send path, per packet to every player, is untouched.
 *  - In: nginx keeps no 64-bit received counter, so the connection's recv
 *    function pointer is wrapped: the wrapper calls the original and adds what
 *    it read to the session (one relaxed atomic add). Reads are few: a
 *    publisher's stream, a player's acknowledgements.
 */

#ifndef NGX_RTMP_STREAMTALLY_IO_H_INCLUDED
#define NGX_RTMP_STREAMTALLY_IO_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>

#include <streamtally.h>


typedef struct {
    ngx_recv_pt              recv;       /* the connection's original */
    streamtally_session_t   *session;    /* NULL: counting off */
    off_t                    sent_base;  /* c->sent when the session began */
} ngx_rtmp_streamtally_io_t;


/*
 * Finds the counters of a connection. Defined by the module (through the
 * nginx-rtmp session's module context); a unit test defines its own.
 */
ngx_rtmp_streamtally_io_t *ngx_rtmp_streamtally_io_of(ngx_connection_t *c);

/* Routes c's reads through the counting wrapper (idempotent). */
void ngx_rtmp_streamtally_io_attach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c);

/* Restores c's original recv; nothing is counted afterwards. */
void ngx_rtmp_streamtally_io_detach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c);

/* Hands the bytes c sent since io->sent_base to the session. */
void ngx_rtmp_streamtally_io_sync(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c);

#endif /* NGX_RTMP_STREAMTALLY_IO_H_INCLUDED */
