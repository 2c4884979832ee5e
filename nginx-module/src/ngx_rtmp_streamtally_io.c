/*
 * 64-bit byte counting for RTMP sessions; see the header.
 */

#include "ngx_rtmp_streamtally_io.h"


static ssize_t ngx_rtmp_streamtally_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static ssize_t ngx_rtmp_streamtally_send(ngx_connection_t *c, u_char *buf,
    size_t size);


void
ngx_rtmp_streamtally_io_attach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c)
{
    if (c->recv == ngx_rtmp_streamtally_recv) {
        return;
    }

    io->recv = c->recv;
    io->send = c->send;
    c->recv = ngx_rtmp_streamtally_recv;
    c->send = ngx_rtmp_streamtally_send;
}


void
ngx_rtmp_streamtally_io_detach(ngx_rtmp_streamtally_io_t *io,
    ngx_connection_t *c)
{
    if (c->recv != ngx_rtmp_streamtally_recv) {
        return;
    }

    c->recv = io->recv;
    c->send = io->send;
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


static ssize_t
ngx_rtmp_streamtally_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t                     n;
    ngx_rtmp_streamtally_io_t  *io;

    io = ngx_rtmp_streamtally_io_of(c);

    n = io->send(c, buf, size);

    if (n > 0 && io->session != NULL) {
        streamtally_session_add_bytes(io->session, 0, (uint64_t) n);
    }

    return n;
}
