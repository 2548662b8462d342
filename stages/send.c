/* send.c: sending a prepared response: the head (MSG_MORE, so it shares a
 * segment with the body) and the body with sendfile(2), or head and body
 * together in one send(2) or sendmsg(2) when the cache holds the file in
 * memory. Never blocks on the socket. Used by the writer pool and by readers
 * sending a response inline. */
#include "stages/send.h"

#include "lib/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* send(2) of BUF[*OFF..LEN) until done; MORE: more bytes follow at once. */
static enum sl_send_rc send_text(struct sl_conn *c, const char *buf, uint32_t len,
                                 uint32_t *off, bool more, bool body,
                                 struct sl_tstats *st)
{
    while (*off < len) {
        ssize_t n =
            send(c->fd, buf + *off, len - *off, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SL_SENT_AGAIN : SL_SENT_ERR;
        }
        *off += (uint32_t)n;
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)n);
        if (body) {
            c->body_sent += (uint64_t)n;
            SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)n);
        }
    }
    return SL_SENT_ALL;
}

/* sendfile(2) of [body_off, body_end) within *BUDGET bytes this turn. */
static enum sl_send_rc send_range(struct sl_conn *c, size_t *budget, struct sl_tstats *st)
{
    while (c->body_off < c->body_end) {
        if (*budget == 0)
            return SL_SENT_TURN;
        size_t want = SL_MIN((size_t)(c->body_end - c->body_off), *budget);
        ssize_t n = sendfile(c->fd, c->entry->fd, &c->body_off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SL_SENT_AGAIN : SL_SENT_ERR;
        }
        if (n == 0) {
            /* The file shrank under us: never pad or send other bytes. The
               client sees a short body and a closed connection. */
            sl_log(SL_LOG_WARN, "file changed while being sent (%lld of %lld bytes sent)",
                   (long long)c->body_off, (long long)c->body_end);
            return SL_SENT_ERR;
        }
        *budget -= (size_t)n;
        c->body_sent += (uint64_t)n;
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)n);
        SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)n);
    }
    return SL_SENT_ALL;
}

/* The parts of a multipart/byteranges body, resuming where the last turn
 * stopped. */
static enum sl_send_rc send_parts(struct sl_conn *c, size_t *budget, struct sl_tstats *st)
{
    struct sl_parts *p = c->parts;
    while (p->cur <= p->n) {
        if (p->in_text) {
            bool last = p->cur == p->n;
            enum sl_send_rc rc = send_text(c, p->text[p->cur], p->text_len[p->cur],
                                           &p->text_off, !last, true, st);
            if (rc != SL_SENT_ALL)
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
        enum sl_send_rc rc = send_range(c, budget, st);
        if (rc != SL_SENT_ALL)
            return rc;
        p->cur++;
        p->in_text = true;
    }
    return SL_SENT_ALL;
}

/* Head and body from memory (a small file the cache holds), in one system
 * call, one segment. Up to SEND_COPY_MAX bytes in all are copied together
 * and sent with send(2): sendmsg(2)'s copying in of the msghdr and the
 * iovecs costs more than copying a page here (perf record, 1 KiB keep-alive:
 * 4.5% of sluice's CPU outside tcp_sendmsg with sendmsg, 2.2% with send,
 * the copy 0.2%). */
#define SEND_COPY_MAX 4096

static enum sl_send_rc send_mem(struct sl_conn *c, struct sl_tstats *st)
{
    const char *body = c->entry->body;
    while (c->hdr_off < c->hdr_len || c->body_off < c->body_end) {
        size_t hl = c->hdr_len - c->hdr_off;
        size_t bl = (size_t)(c->body_end - c->body_off);
        ssize_t w;
        if (hl + bl <= SEND_COPY_MAX) {
            char one[SEND_COPY_MAX];
            memcpy(one, c->hdr + c->hdr_off, hl);
            memcpy(one + hl, body + c->body_off, bl);
            w = send(c->fd, one, hl + bl, MSG_NOSIGNAL);
        } else {
            struct iovec iov[2];
            size_t n = 0;
            if (hl > 0)
                iov[n++] = (struct iovec){c->hdr + c->hdr_off, hl};
            if (bl > 0)
                iov[n++] = (struct iovec){(char *)body + c->body_off, bl};
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
            w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? SL_SENT_AGAIN : SL_SENT_ERR;
        }
        SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)w);
        uint32_t h = (uint32_t)SL_MIN((size_t)w, (size_t)(c->hdr_len - c->hdr_off));
        c->hdr_off += h;
        size_t b = (size_t)w - h;
        c->body_off += (off_t)b;
        c->body_sent += b;
        SL_COUNTER_ADD(&st->ev.body_bytes_sent, (uint64_t)b);
    }
    return SL_SENT_ALL;
}

enum sl_send_rc sl_send_some(struct sl_conn *c, size_t budget, struct sl_tstats *st)
{
    if (c->entry != NULL && c->entry->body != NULL && c->parts == NULL)
        return send_mem(c, st);
    bool body_follows = c->parts != NULL || c->body_off < c->body_end;
    enum sl_send_rc rc =
        send_text(c, c->hdr, c->hdr_len, &c->hdr_off, body_follows, false, st);
    if (rc != SL_SENT_ALL)
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

enum sl_send_next sl_send_finish(struct sl_conn *c, bool at_once, struct sl_tstats *st)
{
    sl_conn_end_response(c, st, true);
    if (c->keepalive) {
        sl_conn_set_state(c, SL_CONN_READ);
        return SL_NEXT_READ;
    }
    if (c->client_close && c->status < 400 && c->buf_len == 0 && c->discard == 0 &&
        ((at_once && c->drained) || unread_input(c) == 0)) {
        /* The client asked for the close and has sent nothing more (a
           client that said close may not send another request): close now,
           as nginx does, without a trip through the reader. A response sent
           at once after a read that left the socket empty needs no system
           call to know it (a microsecond on a VM, a twentieth of a new
           connection's cost); after a wait (the writers, the detector), a
           client may have sent more meanwhile, and FIONREAD asks. Bytes that
           did arrive would turn the close into a reset: those clients
           linger. */
        sl_conn_close(c);
        return SL_NEXT_CLOSED;
    }
    /* Lingering close: shut our side, let the reader drain what the
       client still sends, then close. Closing with unread input would
       make the kernel reset the connection, and a reset can destroy the
       response before the client has read it. */
    shutdown(c->fd, SHUT_WR);
    sl_conn_set_state(c, SL_CONN_LINGER);
    return SL_NEXT_LINGER;
}
