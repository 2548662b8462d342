/* reader.c: stage 2. Each reader thread owns an epoll set and an input queue.
 * It takes connections from its queue (new ones from the acceptor, kept-alive
 * ones back from the writers), reads and parses the next request head,
 * prepares the response through the cache, and sends it itself when that
 * cannot wait for the disk (inline_max), else hands the connection to the
 * writers. A connection waiting for input sits in the epoll set (edge-
 * triggered, registered while this thread holds it; see wait_input) and on
 * one of three timeout lists: heads being received (header timeout), idle
 * keep-alive connections (keep-alive timeout, in deadline order) and
 * lingering closes. The connections one epoll_wait reports are read before
 * any is served, up to 64 at a time (read_batch), so the cache checks a file
 * they share for changes once for all of them.
 *
 * With [acceptor] threads = 0 the readers accept too (as nginx's workers do):
 * the listening socket is in every reader's epoll set (EPOLLEXCLUSIVE: one
 * reader woken per arrival), and a new connection is served by the reader
 * that accepted it at once, its request read in the same round (the kernel
 * held it until the request came, [server] defer_accept). No hand-off, so no
 * wake-up of another thread: with a new connection per request that wake-up
 * was a third of the cost. While a limit binds, the socket leaves the set
 * (its connections wait in the kernel) and the reader tries again every few
 * milliseconds. */
#include "core/http.h"
#include "core/response.h"
#include "lib/log.h"
#include "stages/idle_close.h"
#include "stages/loop.h"
#include "stages/pipeline.h"
#include "stages/proxied.h"
#include "stages/send.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#define MAX_EVENTS 256
#define SWEEP_NS 100000000ull   /* check timeouts every 100 ms */
#define LINGER_NS 2000000000ull /* drain a closing client for at most 2 s */
#define IDLE_CLOSE_MAX 256      /* idle connections closed per round for room */
#define INLINE_RUN_MAX 16       /* pipelined responses sent inline in a row */
#define SPARE_BUFS 64           /* empty input buffers a reader keeps for reuse */
#define READ_BATCH_MAX SPARE_BUFS /* ready connections read before any is served */
#define DRAIN_IDLE_NS 1000000000ull /* draining: an idle keep-alive connection
                                      closes once idle this long (see sweep) */
#define ACCEPT_GROUP 8 /* accepted connections read before one cache sync
                          stamps them all (take_new) */
#define ACCEPT_BATCH MAX_EVENTS /* connections a reader accepts per round: as
                                  many as the events it serves, so 2,000 clients
                                  connecting at once are not let in 16 a round */

/* data.ptr of the listening socket in a reader's epoll set. */
static char listen_tag;
#define LISTEN_TAG ((void *)&listen_tag)

/* Admission control, per reader (CoDel's idea, Nichols & Jacobson 2012, with
 * a standing-queue test as in its first form): each interval, the least any
 * request waited (from its last bytes reaching the kernel, listen backlog
 * included, to being parsed here) is compared with the target. Above it for
 * a whole interval, the reader is "dropping" until an interval whose least
 * wait is under the target, or one without any request. */
struct codel {
    uint64_t interval_end; /* when the current interval closes */
    uint64_t min_wait;     /* least wait seen in it (UINT64_MAX: none) */
    bool dropping;
};

struct reader {
    struct sl_thread *t;
    struct sl_loop loop; /* epoll set (with the queue's eventfd), sweep clock */
    struct sl_queue *q;
    struct cds_list_head heads; /* receiving a request head; header timeout */
    struct cds_list_head idle;  /* between requests; keep-alive timeout */
    struct cds_list_head lingering; /* draining a closed one; LINGER_NS */
    struct sl_tstats *st;
    uint64_t now;
    int64_t rt_off;  /* CLOCK_REALTIME - sl_now_ns() clock, this round */
    uint64_t target; /* [admission] queue_wait_target this round; 0: off */
    struct codel codel;
    long nidle;        /* connections on the idle list */
    size_t inline_max; /* [reader] inline_max this round; 0: hand every response on */
    char *spare[SPARE_BUFS]; /* empty input buffers of spare_cap bytes (see buf_give) */
    int nspare;
    uint32_t spare_cap;
    struct sl_conn *fresh[ACCEPT_GROUP]; /* accepted and read, not yet served */
    int nfresh;
    bool listening;     /* the listening socket is in the epoll set */
    uint64_t accept_at; /* nonzero: out of the set until then (a limit binds) */
};

/* Gives C an input buffer of max_header_size bytes, a spare one if there is
 * one of that size. Cannot fail. */
static void buf_take(struct reader *r, struct sl_conn *c)
{
    uint32_t cap = (uint32_t)sl_set.limits.max_header_size;
    c->buf_cap = cap;
    if (r->nspare > 0 && r->spare_cap == cap)
        c->buf = r->spare[--r->nspare];
    else
        c->buf = sl_malloc(cap);
}

/* Takes C's input buffer (nothing in it) away, keeping it for the next
 * request: a buffer per keep-alive request was a malloc and a free of
 * max_header_size bytes, which glibc takes from and gives back to a thread's
 * arena (trimming it with madvise, faulting the pages in again). A reader
 * keeps at most SPARE_BUFS, of the current size only; a request touches the
 * first page of one, so they cost little memory. */
static void buf_give(struct reader *r, struct sl_conn *c)
{
    uint32_t cap = (uint32_t)sl_set.limits.max_header_size;
    if (c->buf != NULL && c->buf_cap == cap) {
        if (r->spare_cap != cap) { /* a reload changed the size */
            while (r->nspare > 0)
                free(r->spare[--r->nspare]);
            r->spare_cap = cap;
        }
        if (r->nspare < SPARE_BUFS) {
            r->spare[r->nspare++] = c->buf;
            c->buf = NULL;
        }
    }
    free(c->buf);
    c->buf = NULL;
    c->buf_cap = 0;
}

/* Closes C; its input buffer goes back to R's spares (R may be NULL): one
 * connection per request would otherwise free and allocate a buffer each,
 * and the allocator's trims (madvise, a TLB shootdown each) cost more than
 * the request. */
static void close_conn(struct reader *r, struct sl_conn *c)
{
    if (r != NULL) {
        buf_give(r, c);
    } else {
        free(c->buf);
        c->buf = NULL;
    }
    sl_conn_close(c);
}

/* Waits for more input on C, which has nothing unread (c->drained), or is
 * not registered edge-triggered: registers or re-arms it as needed, and puts
 * it on the timeout list that fits its state.
 *
 * Two kinds of registration. While readers send responses themselves
 * (inline_max > 0), it is edge-triggered and stays while this reader holds
 * the connection, so a response sent inline costs no epoll_ctl at all: an
 * edge comes with every arrival after the read that drained the socket, and
 * adding or modifying a registration reports bytes already there at once. A
 * connection leaves the set (leave(): EPOLL_CTL_DEL) before it goes to
 * another stage, so no event ever names a connection another thread owns or
 * has freed. In the full pipeline (inline_max = 0), where every response goes
 * to the writers, it is one-shot: the event disarms it, so a hand-off needs
 * no epoll_ctl, and one MOD re-arms it per request. */
static void wait_input(struct reader *r, struct sl_conn *c)
{
    bool edge = r->inline_max > 0;
    if (c->reg != (edge ? SL_REG_EDGE : SL_REG_ONESHOT) || !edge) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP |
                                           (edge ? EPOLLET : EPOLLONESHOT),
                                 .data.ptr = c};
        int op = c->reg == SL_REG_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(r->loop.epfd, op, c->fd, &ev) != 0) {
            sl_log(SL_LOG_ERROR, "reader: epoll_ctl: %s", strerror(errno));
            close_conn(r, c);
            return;
        }
        c->reg = edge ? SL_REG_EDGE : SL_REG_ONESHOT;
    }
    if (c->state == SL_CONN_LINGER) {
        /* Deadline set when lingering began; a connection back from a read
           keeps it, so the list is kept in deadline order by insertion. */
        sl_timer_add(&r->lingering, c);
    } else if (c->buf_len > 0 || c->requests == 0 || c->discard > 0) {
        /* A request on its way (head, or a body being dropped): its header
           timeout runs from the first wait for it, not from the last byte,
           so trickling cannot extend it (see the event loop). */
        if (c->deadline_ns == 0)
            c->deadline_ns =
                r->now + sl_set.header_timeout_ns;
        cds_list_add_tail(&c->timer_link, &r->heads);
    } else {
        sl_conn_set_state(c, SL_CONN_IDLE);
        r->nidle++;
        c->deadline_ns =
            r->now + sl_set.keepalive_timeout_ns;
        /* An idle connection keeps no buffer: thousands of them cost little. */
        buf_give(r, c);
        sl_timer_add(&r->idle, c); /* in order even when a reload shortens it */
    }
}

/* C goes to another stage (or back to this reader's queue): out of the epoll
 * set first, so no event for it arrives while it is away. */
static void leave(struct reader *r, struct sl_conn *c)
{
    if (c->reg == SL_REG_EDGE) { /* a fired one-shot one is disarmed already */
        if (epoll_ctl(r->loop.epfd, EPOLL_CTL_DEL, c->fd, NULL) != 0)
            sl_log(SL_LOG_ERROR, "reader: epoll_ctl(DEL): %s", strerror(errno));
        c->reg = SL_REG_NONE;
    }
}

/* Takes C off its timeout list; an idle connection is reading again. */
static void unlist(struct reader *r, struct sl_conn *c)
{
    cds_list_del(&c->timer_link);
    if (c->state == SL_CONN_IDLE) {
        sl_conn_set_state(c, SL_CONN_READ);
        r->nidle--;
    }
}

/* Feeds one request's queue wait to the controller. Returns true if the
 * request is to be shed: while dropping, a new connection's first request,
 * and any request that waited longer than target + interval. */
static bool codel_shed(struct reader *r, const struct sl_conn *c, uint64_t wait)
{
    struct codel *cd = &r->codel;
    uint64_t interval = sl_set.adm_interval_ns;
    if (cd->interval_end == 0 || r->now >= cd->interval_end + interval) {
        /* The first request, or the first after a whole interval without
           any: no standing queue then. A fresh interval starts here; one
           slow request alone never starts dropping. */
        if (cd->dropping) {
            cd->dropping = false;
            uatomic_dec(&sl_srv.adm_dropping);
        }
        cd->min_wait = wait;
        cd->interval_end = r->now + interval;
        return false;
    }
    if (wait < cd->min_wait)
        cd->min_wait = wait;
    if (r->now >= cd->interval_end) {
        bool drop = cd->min_wait != UINT64_MAX && cd->min_wait > r->target;
        if (drop != cd->dropping) {
            cd->dropping = drop;
            if (drop)
                uatomic_inc(&sl_srv.adm_dropping);
            else
                uatomic_dec(&sl_srv.adm_dropping);
            sl_log(SL_LOG_DEBUG, "reader: admission %s (least queue wait %.1f ms)",
                   drop ? "dropping" : "back to normal", (double)cd->min_wait / 1e6);
        }
        cd->min_wait = UINT64_MAX;
        cd->interval_end = r->now + interval;
    }
    if (!cd->dropping)
        return false;
    return c->requests == 0 || wait > r->target + interval;
}

/* Leaves the dropping state (admission turned off, or the reader stops). */
static void codel_reset(struct reader *r)
{
    if (r->codel.dropping)
        uatomic_dec(&sl_srv.adm_dropping);
    r->codel = (struct codel){.min_wait = UINT64_MAX};
}

/* For the adaptive limit (stages/admission.h): the time C's request waited
 * inside sluice, from its acceptance or the arrival of its bytes, whichever
 * is later (the listen backlog is the limit's doing, not a queue it should
 * shrink for), counts toward the mean wait of the interval. */
static void note_internal_wait(struct reader *r, const struct sl_conn *c)
{
    /* From the later of the request's arrival and the connection's accept:
       the wait in sluice's queues, not in the listen backlog (the admission
       limit's waiting room; with readers that accept, acceptor.c watches
       its length). */
    uint64_t from = SL_MAX(c->rx_ns, c->accepted_ns);
    uint64_t w = r->now > from ? r->now - from : 0;
    /* Relaxed: counts the acceptor reads once per interval; a request that
       lands in the next interval's figures changes nothing that matters. */
    struct sl_adm_reader *a = &sl_srv.adm_reader[r->t->index];
    __atomic_fetch_add(&a->wait_sum, w, __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->wait_count, 1, __ATOMIC_RELAXED);
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
    if (c->discard == 0)
        c->deadline_ns = 0; /* the request is in whole: the next one's timeout is its own */
}

/* What became of a connection the reader worked on. */
enum outcome {
    NEED_INPUT, /* still ours: the head is incomplete */
    SERVED,     /* still ours: a response went out inline; parse what follows */
    GONE,       /* handed on, waiting in the epoll set, or closed */
};

static void serve_linger(struct reader *r, struct sl_conn *c);
static void wait_input(struct reader *r, struct sl_conn *c);

/* Can this reader send C's prepared response itself without waiting for the
 * disk? Heads alone and bodies in memory can; file data only up to
 * inline_max bytes of a file wholly in the page cache. */
static bool inline_ok(const struct reader *r, struct sl_conn *c)
{
    if (r->inline_max == 0 ||
        !sl_set.optimistic_write)
        return false; /* strict pipeline: every response waits in the detector */
    if (c->entry == NULL)
        return true; /* a head and a built-in body, all in c->hdr */
    if (c->parts == NULL && (c->entry->body != NULL || c->body_off >= c->body_end))
        return true;
    return (uint64_t)c->entry->size <= r->inline_max &&
           sl_cache_resident(sl_srv.cache, c->entry, r->now);
}

/* C's response is ready. Sends it here when that cannot block on the disk
 * (Flash's AMPED idea: the event loop serves what is in memory, helpers do
 * what may block), else hands C to the writer pool, or to the detector in a
 * strict pipeline. What an inline send leaves (a full socket, a long body)
 * goes on to the detector or the writers as usual. */
static enum outcome respond(struct reader *r, struct sl_conn *c)
{
    sl_conn_set_state(c, SL_CONN_SEND);
    if (!inline_ok(r, c)) {
        leave(r, c);
        sl_to_send(c);
        return GONE;
    }
    switch (sl_send_some(c, r->inline_max, r->st)) {
    case SL_SENT_ALL:
        break;
    case SL_SENT_AGAIN:
        leave(r, c);
        sl_to_detector(c);
        return GONE;
    case SL_SENT_TURN:
        leave(r, c);
        sl_to_writer(c);
        return GONE;
    case SL_SENT_ERR:
        close_conn(r, c);
        return GONE;
    }
    SL_COUNTER_ADD(&r->st->ev.sent_inline, 1);
    switch (sl_send_finish(c, true, r->st)) {
    case SL_NEXT_CLOSED:
        return GONE;
    case SL_NEXT_LINGER:
        c->deadline_ns = r->now + LINGER_NS;
        serve_linger(r, c);
        return GONE;
    case SL_NEXT_READ:
        break;
    }
    if (c->buf_len == 0 && c->discard == 0 && (c->drained || c->reg != SL_REG_EDGE) &&
        !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED)) {
        /* The last read emptied the socket, so whatever the client sends next
           comes with a new edge: wait, no read, no epoll_ctl. (A registration
           that is not edge-triggered yet is armed now, which checks.) */
        wait_input(r, c);
        return GONE;
    }
    return SERVED;
}

/* A response to C is being decided (REQ: its parsed head, or NULL): the
 * bookkeeping every response gets exactly once, whichever path decides it,
 * so it is logged and counted like any other. */
static void begin_response(struct reader *r, struct sl_conn *c, const struct sl_request *req)
{
    c->req_start_ns = r->now;
    if (sl_accesslog_enabled())
        c->logrec = sl_accesslog_record(req, c->buf, c->buf_len, &c->peer.sa);
    SL_COUNTER_ADD(&r->st->stage[SL_STAGE_READER].processed, 1);
}

_Static_assert(SL_CONN_HDR_CAP >= SL_RESPONSE_HEAD_MIN, "c->hdr holds any response head");

/* Makes RESP, decided with its head in c->hdr, C's response to send.
 * CLIENT_CLOSE: the client asked to close after it (see sl_conn). */
static void take_response(struct sl_conn *c, const struct sl_response *resp, bool client_close)
{
    c->status = resp->status;
    c->keepalive = resp->keepalive;
    c->client_close = client_close;
    c->discard = resp->discard;
    c->hdr_len = resp->head_len;
    c->hdr_off = 0;
    c->entry = resp->entry;
    c->parts = resp->parts;
    c->body_start = c->body_off = resp->body_start;
    c->body_end = resp->body_end;
    c->body_sent = 0;
}

/* What a response on C (its request counted) is decided from: this round's
 * settings, the cache, and whether the server would keep C open after it. */
static struct sl_response_env response_env(const struct reader *r, const struct sl_conn *c)
{
    long maxreq = sl_set.max_requests_per_connection;
    return (struct sl_response_env){
        .cache = sl_srv.cache,
        .index = sl_set.index,
        .precompressed = sl_set.precompressed,
        .max_body_discard = sl_set.max_body_discard,
        .keepalive = !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) &&
                     (maxreq == 0 || c->requests < (uint64_t)maxreq),
        .read_ns = c->read_ns,
        .unique = r->now ^ ((uint64_t)c->fd << 40) ^ c->requests,
    };
}

/* Parses what is buffered and responds to a complete head. */
static enum outcome try_parse(struct reader *r, struct sl_conn *c)
{
    struct sl_request req;
    int status = 400;
    int rc = sl_http_parse_request(c->buf, c->buf_len, &sl_set.limits, &req, &status);
    if (rc == SL_AGAIN)
        return NEED_INPUT;
    begin_response(r, c, rc == SL_ERR ? NULL : &req);
    uint64_t wait = c->rx_ns != 0 && r->now > c->rx_ns ? r->now - c->rx_ns : 0;
    bool codel = r->target > 0 &&
                 sl_set.adm_policy == SL_ADM_CODEL;
    if (r->target > 0)
        note_internal_wait(r, c);
    struct sl_response resp;
    if (rc == SL_ERR) {
        c->requests++;
        sl_response_error(status, c->hdr, sizeof(c->hdr), &resp);
        take_response(c, &resp, false);
        c->buf_len = 0;
    } else if (c->refuse || (codel && codel_shed(r, c, wait))) {
        /* Turned away before any cache or disk work: 503, then close. */
        SL_COUNTER_ADD(c->refuse ? &r->st->ev.refused_full : &r->st->ev.shed_queue_wait,
                       1);
        c->requests++;
        sl_response_unavailable(sl_set.adm_retry_after, req.method == SL_METHOD_HEAD, c->hdr,
                                sizeof(c->hdr), &resp);
        take_response(c, &resp, false);
        c->buf_len = 0;
    } else {
        c->requests++;
        struct sl_response_env env = response_env(r, c);
        sl_response_build(&env, &req, c->hdr, sizeof(c->hdr), &resp);
        take_response(c, &resp, !req.keepalive);
        /* Keep pipelined bytes after the head for the next round. */
        size_t used = (size_t)rc;
        memmove(c->buf, c->buf + used, c->buf_len - used);
        c->buf_len -= (uint32_t)used;
    }
    /* The head is in. A body to drop still counts against this request's
       header timeout (one bound for head and body: trickling cannot extend
       it); else the next request's timeout is its own. */
    if (c->discard == 0)
        c->deadline_ns = 0;
    if (c->buf_len == 0 && c->discard == 0)
        buf_give(r, c);
    return respond(r, c);
}

/* read(2) into C's buffer; with admission control on, recvmsg(2) instead, to
 * learn when the bytes reached the kernel. */
static ssize_t read_input(struct reader *r, struct sl_conn *c)
{
    char *p = c->buf + c->buf_len;
    size_t room = c->buf_cap - c->buf_len;
    if (r->target == 0) {
        c->rx_ns = 0;
        return read(c->fd, p, room);
    }
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {p, room};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    ssize_t n = recvmsg(c->fd, &m, 0);
    if (n > 0) {
        /* The latest bytes' arrival (the kernel stamps the last segment
           read): for the read that completes a head, how long the request
           has been ready, so a client that sends its head slowly does not
           count as queueing here. */
        c->rx_ns = r->now;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL;
             cm = CMSG_NXTHDR(&m, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
                continue;
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            int64_t rx = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - r->rt_off;
            if (rx > 0 && (uint64_t)rx < r->now)
                c->rx_ns = (uint64_t)rx;
        }
    }
    return n;
}

/* Reads and parses until a request is handed on, input runs dry (wait), or the
 * connection ends. C is owned by this reader on entry; not after return. */
static void serve_input(struct reader *r, struct sl_conn *c)
{
    int sent = 0;
    for (;;) {
        if (c->discard > 0)
            discard_buffered(c);
        if (SL_UNLIKELY(c->state == SL_CONN_PROXY) && c->buf_len > 0 &&
            sl_proxied_take(c, r->st) == SL_ERR) {
            close_conn(r, c); /* no valid PROXY header: no response */
            return;
        }
        if (c->discard == 0 && c->buf_len > 0 && c->state != SL_CONN_PROXY) {
            enum outcome o = try_parse(r, c);
            if (o == GONE)
                return;
            if (o == SERVED && ++sent >= INLINE_RUN_MAX) {
                /* A client pipelining many requests: the others' turn. */
                leave(r, c);
                sl_to_reader(c);
                return;
            }
            if (o == SERVED)
                continue;
        }
        if (c->buf == NULL)
            buf_take(r, c);
        if (c->buf_len >= c->buf_cap) {
            /* A full buffer the parser still waits on. If a reload raised
               max_header_size since it was allocated, the head gets the new
               room; else it cannot fit: 431, logged and counted like any
               response (the parser reports 414 and other 431s first). */
            size_t want = sl_set.limits.max_header_size;
            if (want > c->buf_cap) {
                c->buf_cap = (uint32_t)want;
                c->buf = sl_realloc(c->buf, c->buf_cap);
                continue;
            }
            begin_response(r, c, NULL);
            c->requests++;
            struct sl_response resp;
            sl_response_error(431, c->hdr, sizeof(c->hdr), &resp);
            take_response(c, &resp, false);
            c->buf_len = 0;
            if (respond(r, c) == GONE)
                return;
            continue;
        }
        size_t room = c->buf_cap - c->buf_len;
        ssize_t n = read_input(r, c);
        if (n > 0) {
            c->buf_len += (uint32_t)n;
            c->drained = (size_t)n < room;
            c->read_ns = 0; /* read on its own: the cache checks its file */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->drained = true;
            /* Draining, an idle keep-alive connection waits like any: its
               client may be sending the next request right now, which gets
               a response with Connection: close; sweep() closes it if it
               stays idle. */
            wait_input(r, c);
            return;
        }
        close_conn(r, c); /* EOF or error: the client is gone */
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
    close_conn(r, c);
}

/* A connection handed to this reader by another stage. */
static void take(struct reader *r, struct sl_conn *c)
{
    if (c->state == SL_CONN_LINGER) {
        c->deadline_ns = r->now + LINGER_NS;
        serve_linger(r, c);
        return;
    }
    if (c->requests > 0 && c->buf_len == 0 && c->discard == 0 &&
        !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED)) {
        /* Back from a writer with nothing buffered: the client has rarely sent
           its next request yet, so skip the read that would say EAGAIN. Adding
           the registration checks readiness, so bytes already there are
           reported at once. */
        wait_input(r, c);
        return;
    }
    serve_input(r, c);
}

/* Reads the next bytes of C, which has nothing buffered, ahead of serving
 * it (read_batch, take_new). False if the read brought nothing (EAGAIN, end
 * of file, an error): serve_input reads again and handles it. */
static bool read_ahead(struct reader *r, struct sl_conn *c)
{
    if (c->buf == NULL)
        buf_take(r, c);
    ssize_t k = read_input(r, c);
    if (k <= 0)
        return false;
    c->buf_len = (uint32_t)k;
    c->drained = (size_t)k < c->buf_cap;
    return true;
}

/* Stamps the N connections just read ahead with one sl_cache_sync after the
 * last read: every request among them arrived before it, so the cache checks
 * a file for changes only once its watch reported one, or once per batch
 * where it has no watch, instead of an fstat per request
 * (sl_cache_get_after). On this kind of machine a system call costs about a
 * microsecond, a twentieth of a new connection's whole cost. */
static void stamp(struct sl_conn **cs, int n)
{
    if (n == 0)
        return;
    uint64_t t = sl_cache_sync(sl_srv.cache); /* one read of the cache's inotify fd */
    for (int i = 0; i < n; i++)
        cs[i]->read_ns = t;
}

/* Reads ahead those of the NEV (at most READ_BATCH_MAX) connections epoll
 * reported that wait for a request with nothing buffered, all of them before
 * any is served, and stamps them. */
static void read_batch(struct reader *r, struct epoll_event *evs, int nev)
{
    struct sl_conn *got[READ_BATCH_MAX];
    int n = 0;
    for (int i = 0; i < nev && n < READ_BATCH_MAX; i++) {
        struct sl_conn *c = evs[i].data.ptr;
        if (c == NULL || evs[i].data.ptr == LISTEN_TAG || c->buf_len > 0 || c->discard > 0 ||
            (c->state != SL_CONN_READ && c->state != SL_CONN_IDLE))
            continue;
        if (read_ahead(r, c))
            got[n++] = c;
    }
    stamp(got, n);
}

/* A connection of the epoll set with new input (or a hang-up). */
static void readable(struct reader *r, struct sl_conn *c)
{
    if (c->state == SL_CONN_LINGER)
        serve_linger(r, c);
    else
        serve_input(r, c);
}

/* 408 for a client too slow to send its head (best effort), then close. */
static void time_out(struct reader *r, struct sl_conn *c, bool send_408)
{
    if (send_408) {
        /* A response like any other (c->hdr is free: the last one ended),
           sent once without waiting: counted and logged if it went out. */
        struct sl_tstats *st = sl_tstats_self();
        size_t n = sl_http_error_response(c->hdr, sizeof(c->hdr), 408, false, false, NULL);
        ssize_t w = send(c->fd, c->hdr, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        c->status = 408;
        c->hdr_len = (uint32_t)n;
        c->hdr_off = w > 0 ? (uint32_t)w : 0;
        c->body_sent = 0;
        c->req_start_ns = 0; /* the reader never began it: not timed */
        if (w > 0)
            SL_COUNTER_ADD(&st->ev.bytes_sent, (uint64_t)w);
        if (w == (ssize_t)n) {
            SL_COUNTER_ADD(&st->ev.sent_inline, 1); /* sent here, by the reader */
            SL_COUNTER_ADD(&st->stage[SL_STAGE_READER].processed, 1);
        }
        if (sl_accesslog_enabled())
            c->logrec = sl_accesslog_record(NULL, c->buf, c->buf_len, &c->peer.sa);
        sl_conn_end_response(c, st, w == (ssize_t)n);
    }
    close_conn(r, c);
}

static void sweep(struct reader *r)
{
    struct sl_conn *c, *tmp;
    bool draining = __atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) != 0;
    long idle = 0, heads = 0, lingering = 0;
    uint64_t ka = sl_set.keepalive_timeout_ns;
    cds_list_for_each_entry_safe(c, tmp, &r->idle, timer_link)
    {
        /* Draining: close idle connections, but only those idle for
           DRAIN_IDLE_NS; closing one the moment its client sends a request
           would fail that request (the keep-alive race), while one that
           sends gets its response with Connection: close. In deadline order
           (sl_timer_add), so the first that stays ends the walk. */
        bool drain_now = draining && c->deadline_ns <= r->now + ka - DRAIN_IDLE_NS;
        if (!drain_now && c->deadline_ns > r->now)
            break;
        unlist(r, c);
        close_conn(r, c);
        idle++;
    }
    /* Heads keep the deadline of their first wait while they move to the
       tail, so this list is not in deadline order: look at all of it. */
    cds_list_for_each_entry_safe(c, tmp, &r->heads, timer_link)
    {
        if (c->deadline_ns > r->now)
            continue;
        cds_list_del(&c->timer_link);
        bool proxy = c->state == SL_CONN_PROXY;
        if (proxy) /* timed out before a whole PROXY header: no 408, counted */
            SL_COUNTER_ADD(&r->st->ev.proxy_bad, 1);
        time_out(r, c, c->buf_len > 0 && !proxy);
        heads++;
    }
    cds_list_for_each_entry_safe(c, tmp, &r->lingering, timer_link)
    {
        if (c->deadline_ns > r->now)
            break; /* in deadline order (sl_timer_add) */
        cds_list_del(&c->timer_link);
        close_conn(r, c);
        lingering++;
    }
    if (idle + heads + lingering > 0)
        sl_log(SL_LOG_DEBUG, "reader-%d: timed out: %ld keep-alive, %ld request, %ld lingering",
               r->t->index, idle, heads, lingering);
}

/* The keep-alive deadline of this reader's longest-idle connection (the
 * head of its idle list, in deadline order); UINT64_MAX if none. */
static uint64_t idle_oldest(struct reader *r)
{
    if (cds_list_empty(&r->idle))
        return UINT64_MAX;
    return cds_list_first_entry(&r->idle, struct sl_conn, timer_link)->deadline_ns;
}

/* Publishes this reader's idle count and longest idle (for the acceptor's
 * close_idle decision and the other readers'); only this thread stores. */
static void publish_idle(struct reader *r)
{
    __atomic_store_n(&sl_srv.reader_idle[r->t->index], r->nidle, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.reader_idle_oldest[r->t->index], idle_oldest(r),
                     __ATOMIC_RELAXED);
}

/* Another reader whose longest-idle connection (as it last published) has
 * been idle longer than this reader's: that one should close it. Returns its
 * index, or -1. */
static int idle_longer_elsewhere(struct reader *r)
{
    uint64_t mine = idle_oldest(r);
    for (int i = 0; i < sl_srv.nreaders; i++) {
        if (i != r->t->index &&
            __atomic_load_n(&sl_srv.reader_idle[i], __ATOMIC_RELAXED) > 0 &&
            __atomic_load_n(&sl_srv.reader_idle_oldest[i], __ATOMIC_RELAXED) < mine)
            return i;
    }
    return -1;
}

/* The acceptor asks for room (stages/idle_close.h: one request per
 * connection it let in past max_connections, or one for a client waiting
 * with on_full = wait): close the longest-idle keep-alive connections, one
 * per request, while the count is still over the limit. Each close goes to
 * the reader holding the server's longest-idle connection: this one closes
 * the head of its idle list only while no other reader's has been idle
 * longer (else it wakes that reader, which serves the requests in its next
 * round). So a reader that accepts past the limit never closes a connection
 * it has just served while older ones sit idle elsewhere. A reader with no
 * idle connection leaves the requests to one that has some. */
static void close_idle_for_room(struct reader *r)
{
    if (cds_list_empty(&r->idle) || sl_idle_close_pending() <= 0)
        return;
    if (!sl_idle_close_claim())
        return; /* another reader serves the requests; ours wait for our next round */
    long max = sl_set.max_connections;
    if (sl_set.adm_on_full == SL_FULL_WAIT)
        max--; /* the acceptor waits for one free slot below the limit */
    int closed = 0;
    for (int tries = 0; tries < 2 * IDLE_CLOSE_MAX && closed < IDLE_CLOSE_MAX &&
                        !cds_list_empty(&r->idle);
         tries++) {
        /* The count read next includes the connection the request is for. */
        int want = sl_idle_close_pending();
        if (want <= 0)
            break;
        if (uatomic_read(&sl_srv.conns) <= max) {
            /* Under the limit already (clients left by themselves): the
               requests are stale. If the acceptor added one, look again. */
            if (sl_idle_close_drop(want))
                break;
            continue;
        }
        int other = idle_longer_elsewhere(r);
        if (other >= 0) {
            sl_queue_wake_all(&sl_srv.reader_q[other]);
            break;
        }
        struct sl_conn *c = cds_list_first_entry(&r->idle, struct sl_conn, timer_link);
        unlist(r, c);
        close_conn(r, c);
        closed++;
        sl_idle_close_done(); /* after the close: the acceptor asks again only then */
    }
    sl_idle_close_unclaim();
    if (closed > 0) {
        publish_idle(r);
        SL_COUNTER_ADD(&r->st->ev.closed_idle, (uint64_t)closed);
    }
}

/* Per round (before the queue, and again after epoll_wait, so a reload
 * reaches the next request): inline_max, the admission target, and the
 * offset that turns kernel receive timestamps (CLOCK_REALTIME) into
 * sl_now_ns() time. */
static void admission_round(struct reader *r)
{
    sl_settings_refresh(); /* the settings for this round, one snapshot */
    r->inline_max = (size_t)sl_set.inline_max;
    uint64_t target = sl_set.adm_target_ns;
    if ((target == 0 && r->target != 0) ||
        (r->codel.dropping && sl_set.adm_policy != SL_ADM_CODEL))
        codel_reset(r);
    /* A whole interval without a request: no standing queue. Cleared here
       too, not only at the next request, so the status socket says so. */
    if (r->codel.dropping &&
        r->now >= r->codel.interval_end +
                      sl_set.adm_interval_ns)
        codel_reset(r);
    r->target = target;
    if (target != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->rt_off = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)r->now;
    }
}

/* Serves the connections take_new read ahead, stamped as read_batch stamps
 * a round's events. */
static void serve_fresh(struct reader *r)
{
    stamp(r->fresh, r->nfresh);
    for (int i = 0; i < r->nfresh; i++)
        serve_input(r, r->fresh[i]);
    r->nfresh = 0;
}

/* A connection this reader accepted (sl_accept_some): its request read now,
 * served with the next ACCEPT_GROUP - 1 at most, or at the end of the batch
 * (accept_some). (Reading a whole accepted batch before serving any let the
 * cache skip as many checks, but at 0.1 CPU a batch of 256 held its last
 * connections past a second; a group of 8 holds none for long.) */
static void take_new(void *ctx, struct sl_conn *c)
{
    struct reader *r = ctx;
    /* Let in past max_connections for an idle one (close_idle): that one
       closes first, while the count still says the room is needed. */
    close_idle_for_room(r);
    if (!read_ahead(r, c)) {
        serve_input(r, c); /* nothing yet, or an error: it reads again */
        return;
    }
    r->fresh[r->nfresh++] = c;
    if (r->nfresh == ACCEPT_GROUP)
        serve_fresh(r);
}

/* Puts the listening socket into the epoll set (IN) or takes it out. */
static void listen_set(struct reader *r, bool in)
{
    if (r->listening == in)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = LISTEN_TAG};
    if (epoll_ctl(r->loop.epfd, in ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, sl_srv.listen_fd,
                  &ev) != 0) {
        sl_log(SL_LOG_ERROR, "reader-%d: epoll_ctl(listen): %s", r->t->index, strerror(errno));
        return;
    }
    r->listening = in;
}

/* Accepts a batch (the listening socket was readable, or a wait is over) and
 * serves what it got. A limit that binds, or descriptors run out, take the
 * socket out of the set until the wait sl_accept_some asks for is over. */
static void accept_some(struct reader *r)
{
    r->accept_at = 0;
    /* Every reader refills the SYN gate after its batch (the controller's
       lock keeps it to one at a time): the one that accepted knows the queue
       has room. */
    int rc = sl_accept_some(r->st, true, ACCEPT_BATCH, r->t->index, take_new, r);
    serve_fresh(r);
    if (rc < 0) {
        listen_set(r, false);
        r->accept_at = r->now + (uint64_t)-rc * 1000000ull;
    } else {
        listen_set(r, true);
    }
}

/* Once a round: accepts while the readers accept (sl_readers_accept), with
 * the socket in the set except while a wait is on; reader 0 runs the
 * adaptive limit's controller. A wait for a limit ends early in a round that
 * served events (BUSY): a connection this reader closed may have made room. */
static void accept_round(struct reader *r, bool readable, bool busy)
{
    if (!sl_readers_accept()) {
        listen_set(r, false);
        r->accept_at = 0;
        r->loop.wake_by = 0;
        return;
    }
    if (r->t->index == 0)
        sl_adm_control(r->now);
    if (readable || (r->accept_at != 0 && (busy || r->now >= r->accept_at)))
        accept_some(r);
    else if (r->accept_at == 0)
        listen_set(r, true);
    r->loop.wake_by = r->accept_at;
}

static void close_list(struct cds_list_head *list)
{
    struct sl_conn *c, *tmp;
    cds_list_for_each_entry_safe(c, tmp, list, timer_link)
    {
        cds_list_del(&c->timer_link);
        close_conn(NULL, c);
    }
}

void *sl_reader_main(void *arg)
{
    struct sl_thread *t = arg;
    struct reader r = {
        .t = t, .q = &sl_srv.reader_q[t->index], .codel = {.min_wait = UINT64_MAX}};
    sl_set_thread_name("reader-%d", t->index);
    sl_conn_stage = SL_STAGE_READER;
    rcu_register_thread();
    r.st = sl_tstats_self();
    CDS_INIT_LIST_HEAD(&r.heads);
    CDS_INIT_LIST_HEAD(&r.idle);
    CDS_INIT_LIST_HEAD(&r.lingering);
    if (sl_loop_init(&r.loop, r.q, SWEEP_NS) != SL_OK) {
        sl_log(SL_LOG_CRIT, "reader-%d: epoll: %s", t->index, strerror(errno));
        abort();
    }
    struct sl_stage_counters *sc = &r.st->stage[SL_STAGE_READER];
    struct epoll_event evs[MAX_EVENTS];
    struct sl_qnode *batch[4096];
    while (__atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) < 2) {
        uint64_t t0 = sl_now_ns();
        r.now = t0;
        admission_round(&r);
        close_idle_for_room(&r);
        size_t max = (size_t)sl_set.queue_batch;
        size_t n = sl_queue_pop_batch(r.q, batch, max);
        /* Hand-offs of this round wake the writers once, at its end. */
        sl_queue_defer_begin();
        for (size_t i = 0; i < n; i++)
            take(&r, sl_conn_of(batch[i]));
        sl_queue_defer_end();
        if (sl_loop_sweep(&r.loop, r.now))
            sweep(&r);
        uint64_t t1 = sl_now_ns();
        SL_COUNTER_ADD(&sc->busy_ns, t1 - t0);

        /* n == max: more may be queued. */
        int nev = sl_loop_wait(&r.loop, evs, MAX_EVENTS, n == max, t1);
        uint64_t t2 = sl_now_ns();
        /* Time waiting for work, for the adaptive limit: it grows only while
           the readers have some to spare (stages/admission.h). */
        __atomic_fetch_add(&sl_srv.adm_reader[t->index].idle_ns, t2 - t1, __ATOMIC_RELAXED);
        r.now = t2;
        admission_round(&r);
        sl_queue_defer_begin();
        bool listen_ready = false;
        for (int i = 0; i < nev; i++) {
            /* Read a batch, serve it, read the next: a round of 2,000
               connections checks a shared file once per batch too. */
            if (i % READ_BATCH_MAX == 0)
                read_batch(&r, evs + i, SL_MIN(nev - i, READ_BATCH_MAX));
            if (evs[i].data.ptr == LISTEN_TAG) {
                listen_ready = true; /* accepted after this round's reads */
                continue;
            }
            struct sl_conn *c = evs[i].data.ptr;
            if (c == NULL)
                continue; /* the queue's eventfd: sl_loop_wait drained it */
            bool was_idle = c->state == SL_CONN_IDLE;
            unlist(&r, c);
            /* The keep-alive wait is over: the next request's header timeout
               starts now. Only then: a head or body on its way keeps the
               deadline of its first wait, whatever arrives. */
            if (was_idle)
                c->deadline_ns = 0;
            readable(&r, c);
        }
        accept_round(&r, listen_ready, nev > (listen_ready ? 1 : 0));
        sl_queue_defer_end();
        publish_idle(&r);
        SL_COUNTER_ADD(&sc->busy_ns, sl_now_ns() - t2);
    }
    codel_reset(&r);
    listen_set(&r, false);
    /* Stopping: close what this reader holds; the server drains the queues. */
    close_list(&r.heads);
    close_list(&r.idle);
    close_list(&r.lingering);
    while (r.nspare > 0)
        free(r.spare[--r.nspare]);
    sl_loop_close(&r.loop);
    rcu_unregister_thread();
    return NULL;
}
