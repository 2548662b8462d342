/* reader.c: stage 2. Each reader thread owns an epoll set and an input queue.
 * It takes connections from its queue (new ones from the acceptor, kept-alive
 * ones back from the writers), reads and parses the next request head,
 * prepares the response through the cache, and hands the connection to the
 * writers. A connection waiting for input sits in the epoll set (one-shot, so
 * it fires once and then belongs to this thread again) and on one of two
 * timeout lists kept in deadline order: heads being received (header timeout)
 * and idle keep-alive connections (keep-alive timeout). */
#include "core/http.h"
#include "core/log.h"
#include "core/response.h"
#include "core/server.h"
#include "stages/stages.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <urcu.h>

#define MAX_EVENTS 256
#define SWEEP_NS 100000000ull          /* check timeouts every 100 ms */
#define LINGER_NS 2000000000ull        /* drain a closing client for at most 2 s */

struct reader {
    struct sl_thread *t;
    int epfd;
    struct sl_queue *q;
    struct cds_list_head heads; /* receiving a request head; header timeout */
    struct cds_list_head idle;  /* between requests; keep-alive timeout */
    struct cds_list_head lingering;
    struct sl_tstats *st;
    uint64_t now;
};

static void close_conn(struct sl_conn *c)
{
    free(c->buf);
    c->buf = NULL;
    sl_conn_close(c);
}

/* Waits for more input on C: re-arms the one-shot registration and puts C on
 * the timeout list that fits its state. */
static void wait_input(struct reader *r, struct sl_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = c};
    int op = c->in_reader_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(r->epfd, op, c->fd, &ev) != 0) {
        sl_log(SL_LOG_ERROR, "reader: epoll_ctl: %s", strerror(errno));
        close_conn(c);
        return;
    }
    c->in_reader_epoll = true;
    struct cds_list_head *list;
    if (c->phase == SL_PHASE_LINGER) {
        list = &r->lingering;
        /* deadline set when lingering began */
    } else if (c->buf_len > 0 || c->requests == 0 || c->discard > 0) {
        list = &r->heads;
        if (c->deadline_ns == 0)
            c->deadline_ns = r->now + __atomic_load_n(&sl_srv.header_timeout_ns,
                                                      __ATOMIC_RELAXED);
    } else {
        list = &r->idle;
        c->deadline_ns = r->now + __atomic_load_n(&sl_srv.keepalive_timeout_ns,
                                                  __ATOMIC_RELAXED);
        /* An idle connection keeps no buffer: thousands of them cost little. */
        free(c->buf);
        c->buf = NULL;
        c->buf_cap = 0;
    }
    cds_list_add_tail(&c->timer_link, list);
}

/* Drops request body bytes already buffered. */
static void discard_buffered(struct sl_conn *c)
{
    uint64_t n = SL_MIN(c->discard, (uint64_t)c->buf_len);
    if (n == 0)
        return;
    memmove(c->buf, c->buf + n, c->buf_len - n);
    c->buf_len -= (uint32_t)n;
    c->discard -= n;
}

/* Parses what is buffered. Returns true if C was handed on (response ready). */
static bool try_parse(struct reader *r, struct sl_conn *c)
{
    struct sl_request req;
    int status = 400;
    int rc = sl_http_parse_request(c->buf, c->buf_len, &sl_srv.limits, &req, &status);
    if (rc == SL_AGAIN)
        return false;
    c->deadline_ns = 0;
    c->req_start_ns = r->now;
    if (sl_accesslog_enabled())
        c->logrec = sl_accesslog_record(rc == SL_ERR ? NULL : &req, c->buf, c->buf_len,
                                        &c->peer.sa);
    SL_COUNTER_ADD(&r->st->stage[SL_STAGE_READER].processed, 1);
    if (rc == SL_ERR) {
        c->requests++;
        sl_response_error(c, status);
        c->buf_len = 0;
    } else {
        sl_response_prepare(c, &req);
        /* Keep pipelined bytes after the head for the next round. */
        size_t used = (size_t)rc;
        memmove(c->buf, c->buf + used, c->buf_len - used);
        c->buf_len -= (uint32_t)used;
    }
    if (c->buf_len == 0 && c->discard == 0) {
        free(c->buf);
        c->buf = NULL;
        c->buf_cap = 0;
    }
    c->phase = SL_PHASE_WRITE;
    sl_to_send(c);
    return true;
}

/* Reads and parses until a request is handed on, input runs dry (wait), or the
 * connection ends. C is owned by this reader on entry; not after return. */
static void serve_input(struct reader *r, struct sl_conn *c)
{
    for (;;) {
        if (c->discard > 0)
            discard_buffered(c);
        if (c->discard == 0 && c->buf_len > 0 && try_parse(r, c))
            return;
        if (c->buf == NULL) {
            c->buf_cap = (uint32_t)sl_srv.limits.max_header_size;
            c->buf = sl_malloc(c->buf_cap);
        }
        if (c->buf_len >= c->buf_cap) { /* the parser reports 431/414 first */
            sl_response_error(c, 431);
            c->phase = SL_PHASE_WRITE;
            sl_to_send(c);
            return;
        }
        ssize_t n = read(c->fd, c->buf + c->buf_len, c->buf_cap - c->buf_len);
        if (n > 0) {
            c->buf_len += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) && c->buf_len == 0 &&
                c->discard == 0 && c->requests > 0) {
                close_conn(c); /* draining: idle keep-alive connections go now */
                return;
            }
            wait_input(r, c);
            return;
        }
        close_conn(c); /* EOF or error: the client is gone */
        return;
    }
}

/* Our side is shut down after a closing response: read and drop whatever the
 * client still sends, so closing does not reset the connection and destroy the
 * response before the client has read it. */
static void serve_linger(struct reader *r, struct sl_conn *c)
{
    char sink[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && r->now < c->deadline_ns) {
            wait_input(r, c);
            return;
        }
        break;
    }
    close_conn(c);
}

/* A connection handed to this reader by another stage. */
static void take(struct reader *r, struct sl_conn *c)
{
    if (c->phase == SL_PHASE_LINGER) {
        c->deadline_ns = r->now + LINGER_NS;
        serve_linger(r, c);
        return;
    }
    if (c->requests > 0 && c->buf_len == 0 && c->discard == 0 &&
        !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED)) {
        /* Back from a writer with nothing buffered: the client has rarely sent
           its next request yet, so skip the read that would say EAGAIN. Re-arming
           the one-shot registration re-checks readiness, so bytes already
           there are reported at once. */
        wait_input(r, c);
        return;
    }
    serve_input(r, c);
}

/* A connection whose one-shot registration fired. */
static void readable(struct reader *r, struct sl_conn *c)
{
    if (c->phase == SL_PHASE_LINGER)
        serve_linger(r, c);
    else
        serve_input(r, c);
}

/* 408 for a client too slow to send its head (best effort), then close. */
static void time_out(struct sl_conn *c, bool send_408)
{
    if (send_408) {
        char resp[512];
        size_t n = sl_http_error_response(resp, sizeof(resp), 408, false, false, NULL);
        ssize_t w = send(c->fd, resp, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)n) { /* a response the client got: count it like any */
            struct sl_tstats *st = sl_tstats_self();
            SL_COUNTER_ADD(&st->ev.requests, 1);
            SL_COUNTER_ADD(&st->ev.status_class[4], 1);
        }
        if (w > 0)
            SL_COUNTER_ADD(&sl_tstats_self()->ev.bytes_sent, (uint64_t)w);
        if (sl_accesslog_enabled()) {
            struct sl_logrec *rec = sl_accesslog_record(NULL, c->buf, c->buf_len, &c->peer.sa);
            rec->status = 408;
            rec->bytes = w > 0 ? (uint64_t)w : 0;
            sl_accesslog_submit(rec);
        }
    }
    close_conn(c);
}

static void sweep(struct reader *r)
{
    struct sl_conn *c, *tmp;
    bool draining = __atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) != 0;
    cds_list_for_each_entry_safe(c, tmp, &r->idle, timer_link)
    {
        if (!draining && c->deadline_ns > r->now)
            break;
        cds_list_del(&c->timer_link);
        close_conn(c);
    }
    /* Heads keep the deadline of their first byte while they move to the tail,
       so this list is not in deadline order: look at all of it. */
    cds_list_for_each_entry_safe(c, tmp, &r->heads, timer_link)
    {
        if (c->deadline_ns > r->now)
            continue;
        cds_list_del(&c->timer_link);
        time_out(c, c->buf_len > 0);
    }
    cds_list_for_each_entry_safe(c, tmp, &r->lingering, timer_link)
    {
        if (c->deadline_ns > r->now)
            break;
        cds_list_del(&c->timer_link);
        close_conn(c);
    }
}

static void close_list(struct cds_list_head *list)
{
    struct sl_conn *c, *tmp;
    cds_list_for_each_entry_safe(c, tmp, list, timer_link)
    {
        cds_list_del(&c->timer_link);
        close_conn(c);
    }
}

void *sl_reader_main(void *arg)
{
    struct sl_thread *t = arg;
    struct reader r = {.t = t, .q = &sl_srv.reader_q[t->index]};
    sl_set_thread_name("reader-%d", t->index);
    rcu_register_thread();
    r.st = sl_tstats_self();
    CDS_INIT_LIST_HEAD(&r.heads);
    CDS_INIT_LIST_HEAD(&r.idle);
    CDS_INIT_LIST_HEAD(&r.lingering);
    r.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event wake = {.events = EPOLLIN, .data.ptr = NULL};
    if (r.epfd < 0 || epoll_ctl(r.epfd, EPOLL_CTL_ADD, sl_queue_eventfd(r.q), &wake) != 0) {
        sl_log(SL_LOG_CRIT, "reader-%d: epoll: %s", t->index, strerror(errno));
        abort();
    }
    struct sl_stage_counters *sc = &r.st->stage[SL_STAGE_READER];
    struct epoll_event evs[MAX_EVENTS];
    struct sl_qnode *batch[4096];
    uint64_t next_sweep = 0;
    while (__atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) < 2) {
        uint64_t t0 = sl_now_ns();
        r.now = t0;
        size_t max = (size_t)__atomic_load_n(&sl_srv.queue_batch, __ATOMIC_RELAXED);
        size_t n = sl_queue_pop_batch(r.q, batch, max);
        for (size_t i = 0; i < n; i++)
            take(&r, sl_conn_of(batch[i]));
        if (r.now >= next_sweep) {
            sweep(&r);
            next_sweep = r.now + SWEEP_NS;
        }
        uint64_t t1 = sl_now_ns();
        SL_COUNTER_ADD(&sc->busy_ns, t1 - t0);

        int timeout = (int)((next_sweep - t1) / 1000000) + 1;
        bool slept = false;
        if (n == max)
            timeout = 0; /* more may be queued */
        else if (sl_queue_sleep_begin(r.q))
            slept = true;
        else
            timeout = 0;
        int nev = epoll_wait(r.epfd, evs, MAX_EVENTS, timeout);
        if (slept)
            sl_queue_sleep_end(r.q);
        uint64_t t2 = sl_now_ns();
        r.now = t2;
        for (int i = 0; i < nev; i++) {
            struct sl_conn *c = evs[i].data.ptr;
            if (c == NULL)
                continue; /* the queue's eventfd: drained above next round */
            cds_list_del(&c->timer_link);
            if (c->buf_len == 0 && c->phase == SL_PHASE_READ)
                c->deadline_ns = 0; /* was idle: the header timeout starts now */
            readable(&r, c);
        }
        SL_COUNTER_ADD(&sc->busy_ns, sl_now_ns() - t2);
    }
    /* Stopping: close what this reader holds; the server drains the queues. */
    close_list(&r.heads);
    close_list(&r.idle);
    close_list(&r.lingering);
    close(r.epfd);
    rcu_unregister_thread();
    return NULL;
}
