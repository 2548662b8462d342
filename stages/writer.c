/* writer.c: stage 4, a pool of threads sharing one queue. A writer sends the
 * prepared response head (MSG_MORE, so it shares a segment with the body) and
 * the body with sendfile(2), never blocking on the socket: on EAGAIN the
 * connection goes to the write-readiness detector. A finished response sends
 * the connection back to its reader (keep-alive), to lingering close, or
 * closes it. A writer may block on disk; that is why there is a pool. */
#include "core/log.h"
#include "core/server.h"
#include "stages/stages.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <urcu.h>

#define TURN_BYTES (1u << 20) /* bytes one connection may send per turn */
#define WAIT_MS 500           /* re-check the resize flag this often when idle */

enum send_rc { SENT_ALL, SENT_AGAIN, SENT_TURN, SENT_ERR };

/* send(2) of BUF[*OFF..LEN) until done; MORE: more bytes follow at once. */
static enum send_rc send_text(struct sl_conn *c, const char *buf, uint32_t len, uint32_t *off,
                              bool more, bool body, struct sl_tstats *st)
{
    while (*off < len) {
        ssize_t n = send(c->fd, buf + *off, len - *off, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SENT_AGAIN : SENT_ERR;
        }
        *off += (uint32_t)n;
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)n);
        if (body) {
            c->body_sent += (uint64_t)n;
            SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)n);
        }
    }
    return SENT_ALL;
}

/* sendfile(2) of [body_off, body_end) within *BUDGET bytes this turn. */
static enum send_rc send_range(struct sl_conn *c, size_t *budget, struct sl_tstats *st)
{
    while (c->body_off < c->body_end) {
        if (*budget == 0)
            return SENT_TURN;
        size_t want = SL_MIN((size_t)(c->body_end - c->body_off), *budget);
        ssize_t n = sendfile(c->fd, c->entry->fd, &c->body_off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SENT_AGAIN : SENT_ERR;
        }
        if (n == 0) {
            /* The file shrank under us: never pad or send other bytes. The
               client sees a short body and a closed connection. */
            sl_log(SL_LOG_WARN, "file changed while being sent (%lld of %lld bytes sent)",
                   (long long)c->body_off, (long long)c->body_end);
            return SENT_ERR;
        }
        *budget -= (size_t)n;
        c->body_sent += (uint64_t)n;
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)n);
        SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)n);
    }
    return SENT_ALL;
}

/* The parts of a multipart/byteranges body, resuming where the last turn
 * stopped. */
static enum send_rc send_parts(struct sl_conn *c, size_t *budget, struct sl_tstats *st)
{
    struct sl_parts *p = c->parts;
    while (p->cur <= p->n) {
        if (p->in_text) {
            bool last = p->cur == p->n;
            enum send_rc rc = send_text(c, p->text[p->cur], p->text_len[p->cur],
                                        &p->text_off, !last, true, st);
            if (rc != SENT_ALL)
                return rc;
            p->text_off = 0;
            p->in_text = false;
            if (last) {
                p->cur++;
                break;
            }
            c->body_off = p->start[p->cur];
            c->body_end = p->end[p->cur];
        }
        enum send_rc rc = send_range(c, budget, st);
        if (rc != SENT_ALL)
            return rc;
        p->cur++;
        p->in_text = true;
    }
    return SENT_ALL;
}

/* Head and body from memory (a small file the cache holds), in one
 * sendmsg: one segment, one system call. */
static enum send_rc send_mem(struct sl_conn *c, struct sl_tstats *st)
{
    const char *body = c->entry->body;
    while (c->hdr_off < c->hdr_len || c->body_off < c->body_end) {
        struct iovec iov[2];
        size_t n = 0;
        if (c->hdr_off < c->hdr_len)
            iov[n++] = (struct iovec){c->hdr + c->hdr_off, c->hdr_len - c->hdr_off};
        if (c->body_off < c->body_end)
            iov[n++] = (struct iovec){(char *)body + c->body_off,
                                      (size_t)(c->body_end - c->body_off)};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SENT_AGAIN : SENT_ERR;
        }
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)w);
        uint32_t h = (uint32_t)SL_MIN((size_t)w, (size_t)(c->hdr_len - c->hdr_off));
        c->hdr_off += h;
        size_t b = (size_t)w - h;
        c->body_off += (off_t)b;
        c->body_sent += b;
        SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)b);
    }
    return SENT_ALL;
}

/* Sends what is left of C's response, at most TURN_BYTES of file data. */
static enum send_rc send_some(struct sl_conn *c, struct sl_tstats *st)
{
    if (c->entry != NULL && c->entry->body != NULL && c->parts == NULL)
        return send_mem(c, st);
    size_t budget = TURN_BYTES;
    bool body_follows = c->parts != NULL || c->body_off < c->body_end;
    enum send_rc rc = send_text(c, c->hdr, c->hdr_len, &c->hdr_off, body_follows, false, st);
    if (rc != SENT_ALL)
        return rc;
    if (c->parts)
        return send_parts(c, &budget, st);
    return send_range(c, &budget, st);
}

/* Bytes the client sent that nobody has read (1 if the kernel cannot say). */
static int unread_input(const struct sl_conn *c)
{
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 ? n : 1;
}

static void finish(struct sl_conn *c, struct sl_tstats *st)
{
    SL_COUNTER_ADD(&st->ev.requests, 1);
    int cls = c->status / 100;
    if (cls >= 1 && cls <= 5)
        SL_COUNTER_ADD(&st->ev.status_class[cls], 1);
    SL_COUNTER_ADD(&st->stage[SL_STAGE_WRITER].processed, 1);
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
    if (c->keepalive) {
        c->phase = SL_PHASE_READ;
        sl_to_reader(c);
    } else if (c->client_close && c->status < 400 && c->buf_len == 0 && c->discard == 0 &&
               unread_input(c) == 0) {
        /* The client asked for the close and has sent nothing more (a
           client that said close may not send another request): close now,
           as nginx does, without a trip through the reader. Bytes that did
           arrive would turn the close into a reset: those clients linger. */
        sl_conn_close(c);
    } else {
        /* Lingering close: shut our side, let the reader drain what the
           client still sends, then close. Closing with unread input would
           make the kernel reset the connection, and a reset can destroy the
           response before the client has read it. */
        shutdown(c->fd, SHUT_WR);
        c->phase = SL_PHASE_LINGER;
        sl_to_reader(c);
    }
}

static void serve(struct sl_conn *c, struct sl_tstats *st)
{
    switch (send_some(c, st)) {
    case SENT_ALL:
        finish(c, st);
        break;
    case SENT_AGAIN:
        sl_to_detector(c);
        break;
    case SENT_TURN:
        sl_to_writer(c); /* back of the queue: others get a turn */
        break;
    case SENT_ERR:
        sl_conn_close(c);
        break;
    }
}

void *sl_writer_main(void *arg)
{
    struct sl_thread *t = arg;
    sl_set_thread_name("writer-%d", t->index);
    rcu_register_thread();
    struct sl_tstats *st = sl_tstats_self();
    struct sl_stage_counters *sc = &st->stage[SL_STAGE_WRITER];
    struct sl_qnode *batch[4096];
    sl_queue_consumer_join(&sl_srv.writer_q);
    for (;;) {
        if (__atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) >= 2 ||
            t->index >= __atomic_load_n(&sl_srv.writer_target, __ATOMIC_ACQUIRE))
            break;
        size_t n = sl_queue_pop_batch(&sl_srv.writer_q, batch,
                                      (size_t)__atomic_load_n(&sl_srv.queue_batch, __ATOMIC_RELAXED));
        if (n == 0) {
            sl_queue_wait(&sl_srv.writer_q, WAIT_MS);
            continue;
        }
        uint64_t t0 = sl_now_ns();
        /* Connections going back to a reader wake it once per batch. */
        sl_queue_defer_begin();
        for (size_t i = 0; i < n; i++)
            serve(sl_conn_of(batch[i]), st);
        sl_queue_defer_end();
        SL_COUNTER_ADD(&sc->busy_ns, sl_now_ns() - t0);
    }
    sl_queue_consumer_leave(&sl_srv.writer_q);
    rcu_unregister_thread();
    return NULL;
}
