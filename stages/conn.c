/* conn.c: a connection's birth and death. */
#include "stages/conn.h"
#include "stages/pipeline.h"

#include <stdlib.h>
#include <unistd.h>
#include <urcu.h>

struct sl_conn *sl_conn_new(int fd)
{
    struct sl_conn *c = sl_calloc(1, sizeof(*c));
    c->fd = fd;
    c->new_conn = sl_srv.proxy_protocol; /* its PROXY header is still to come */
    CDS_INIT_LIST_HEAD(&c->timer_link);
    return c;
}

void sl_conn_close(struct sl_conn *c)
{
    if (c->logrec) { /* a response cut short still gets its line */
        c->logrec->status = c->status;
        c->logrec->body_bytes = c->body_sent;
        c->logrec->bytes = c->hdr_off + c->logrec->body_bytes;
        sl_accesslog_submit(c->logrec);
    }
    if (c->entry)
        sl_cache_release(sl_srv.cache, c->entry);
    free(c->parts);
    close(c->fd); /* also leaves every epoll set */
    uatomic_dec(&sl_srv.reader_conns[c->reader]);
    free(c->buf);
    free(c);
    uatomic_dec(&sl_srv.conns);
    SL_COUNTER_ADD(&sl_tstats_self()->ev.conn_closed, 1);
}

