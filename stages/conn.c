/* conn.c: a connection's birth and death, its state transitions, and the
 * end of each response. */
#include "stages/conn.h"
#include "stages/pipeline.h"

#include <stdlib.h>
#include <unistd.h>
#include <urcu.h>

struct sl_conn *sl_conn_new(int fd)
{
    struct sl_conn *c = sl_calloc(1, sizeof(*c));
    c->fd = fd;
    /* Its PROXY header is still to come: */
    c->state = sl_srv.proxy_protocol ? SL_CONN_PROXY : SL_CONN_READ;
    c->owner = SL_STAGE_ACCEPTOR;
    CDS_INIT_LIST_HEAD(&c->timer_link);
    return c;
}

__thread uint8_t sl_conn_stage = SL_STAGE_OTHER;

void sl_conn_close(struct sl_conn *c)
{
    /* Its stage, or the main thread draining the queues after every stage
       thread has left (sl_pipeline_stop). */
    assert(c->owner == sl_conn_stage || sl_conn_stage == SL_STAGE_OTHER);
    struct sl_tstats *st = sl_tstats_self();
    /* A response cut short still gets its line (not counted as a request). */
    sl_conn_end_response(c, st, false);
    close(c->fd); /* also leaves every epoll set */
    uatomic_dec(&sl_srv.reader_conns[c->reader]);
    free(c->buf);
    free(c);
    SL_COUNTER_ADD(&st->ev.conn_closed, 1);
    /* After the count, with release: a status sample that sees this
       connection gone sees it counted closed (app/status.c). */
    __atomic_sub_fetch(&sl_srv.conns, 1, __ATOMIC_RELEASE);
}

bool sl_conn_state_legal(enum sl_conn_state from, enum sl_conn_state to)
{
    switch (from) {
    case SL_CONN_PROXY:
        return to == SL_CONN_READ;
    case SL_CONN_READ:
        return to == SL_CONN_IDLE || to == SL_CONN_SEND;
    case SL_CONN_IDLE:
        return to == SL_CONN_READ;
    case SL_CONN_SEND:
        return to == SL_CONN_READ || to == SL_CONN_LINGER;
    case SL_CONN_LINGER:
    default:
        return false;
    }
}

void sl_conn_end_response(struct sl_conn *c, struct sl_tstats *st, bool complete)
{
    if (complete) {
        SL_COUNTER_ADD(&st->ev.requests, 1);
        if (c->req_start_ns != 0)
            sl_hist_add(&st->response_time, sl_now_ns() - c->req_start_ns);
        int cls = c->status / 100;
        if (cls >= 1 && cls <= 5)
            SL_COUNTER_ADD(&st->ev.status_class[cls], 1);
    }
    if (c->logrec) {
        c->logrec->status = c->status;
        c->logrec->body_bytes = c->body_sent;
        c->logrec->bytes = c->hdr_off + c->logrec->body_bytes;
        sl_accesslog_submit(c->logrec);
        c->logrec = NULL;
    }
    if (c->entry) {
        sl_cache_release(sl_srv.cache, c->entry);
        c->entry = NULL;
    }
    free(c->parts);
    c->parts = NULL;
}

