/*
 * 64-bit byte counting for RTMP sessions; see the header.
 */

#include "ngx_rtmp_streamtally_io.h"


static ssize_t ngx_rtmp_streamtally_recv(ngx_connection_t *c, u_char *buf,
    size_t size);


void
ngx_rtmp_streamtally_io_attach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c)
{
    if (c->recv == ngx_rtmp_streamtally_recv) {
        return;
    }

    io->recv = c->recv;
    c->recv = ngx_rtmp_streamtally_recv;
}


void
ngx_rtmp_streamtally_io_detach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c)
{
    if (c->recv != ngx_rtmp_streamtally_recv) {
        return;
    }

    c->recv = io->recv;
}


void
ngx_rtmp_streamtally_io_sync(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c)
{
    if (io->session == NULL) {
        return;
    }

    /* the library keeps the highest total it was given: never less */
    streamtally_session_set_bytes(io->session, 0,
                                  (uint64_t) (c->sent - io->sent_base));
}


static ssize_t
ngx_rtmp_streamtally_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t                     n;
    ngx_rtmp_streamtally_io_t  *io;

    io = ngx_rtmp_streamtally_io_of(c);

    n = io->recv(c, buf, size);

    /* n <= 0 is NGX_AGAIN, NGX_ERROR or EOF: nothing moved */
    if (n > 0 && io->session != NULL) {
        streamtally_session_add_bytes(io->session, (uint64_t) n, 0);
    }

    return n;
}
