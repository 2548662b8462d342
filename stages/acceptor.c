/* acceptor.c: stage 1. Accepts connections, enforces max_connections and the
 * adaptive limit, and hands each new connection to a reader. EAGAIN means
 * "wait again", ECONNABORTED "next", EMFILE/ENFILE "log, pause accepting,
 * retry later". With [acceptor] threads = 0 the readers call the same code
 * (sl_accept_some) and keep what they accept: no hand-off, no wake-up. */
#include "lib/log.h"
#include "stages/admission.h"
#include "stages/idle_close.h"
#include "stages/pipeline.h"
#include "stages/synfilter.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <urcu.h>

#define PAUSE_MS 100    /* after EMFILE/ENFILE: retry accepting this much later */
#define POLL_MS 200     /* re-check the stop and resize flags this often */
#define ACCEPT_BATCH 64 /* accepts per wakeup before checking flags again */
#define FULL_WAIT_MS 2  /* at a limit, waiting: look at the count again this often */
#define TICK_EVERY 8   /* a reader accepting a batch gives the controller a turn
                           after this many connections */
#define BOUND_REFILL_NS 1000000ull /* while the limit binds, refill the gate at most
                                      this often: a reader that accepts tries again
                                      in every round that served events */

/* Connections let in past max_connections: refused ones until they have
 * their 503, and new ones while readers close idle ones to make room. The
 * open-file limit must leave this much above max_connections. */
static long over_limit_slack(long max)
{
    return max / 16 + 16;
}

/* Idle keep-alive connections the readers hold (each reader's own count). */
static long idle_conns(void)
{
    long n = 0;
    for (int i = 0; i < sl_srv.nreaders; i++)
        n += __atomic_load_n(&sl_srv.reader_idle[i], __ATOMIC_RELAXED);
    return n;
}

/* on_full = wait found max_connections open. With close_idle and a
 * connection waiting in the backlog, asks the readers for one slot (once: a
 * request still pending, or being served, is not repeated, or two idle
 * connections could go for one new one). Returns true if a slot is free after
 * all (a reader made room since the caller looked). */
static bool room_from_idle(long max)
{
    if (!sl_set.adm_close_idle || idle_conns() == 0)
        return false;
    struct pollfd p = {.fd = sl_srv.listen_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return false; /* nobody is waiting: close nothing */
    /* No request pending: the count read below includes the last close. */
    if (sl_idle_close_pending() != 0)
        return false;
    if (uatomic_read(&sl_srv.conns) < max)
        return true;
    sl_idle_close_request_if_none(); /* another acceptor may ask at once: one request */
    return false;
}

/* A new connection finds max_connections open. Returns true to admit it
 * (*REFUSE: flagged for a 503), false if it was closed. */
static bool admit_full(int fd, long now_open, long max, bool *refuse,
                       struct sl_tstats *st)
{
    bool room = now_open <= max + over_limit_slack(max);
    if (room && sl_set.adm_close_idle &&
        idle_conns() > 0) {
        /* Served like any other; a reader closes its longest-idle one: one
           request per connection let in. */
        sl_idle_close_request();
        return true;
    }
    if (room &&
        sl_set.adm_on_full == SL_FULL_REFUSE) {
        *refuse = true;
        return true;
    }
    uatomic_dec(&sl_srv.conns);
    SL_COUNTER_ADD(&st->ev.conn_rejected, 1);
    close(fd);
    return false;
}

/* How many more connections than the least-loaded reader one may hold and
 * still be given new ones: half as many again plus 64. */
static bool within_share(long n, long least)
{
    return n <= least + least / 2 + 64;
}

bool sl_reader_may_accept(int reader)
{
    long mine = uatomic_read(&sl_srv.reader_conns[reader]);
    for (int i = 0; i < sl_srv.nreaders; i++)
        if (i != reader && !within_share(mine, uatomic_read(&sl_srv.reader_conns[i])))
            return false;
    return true;
}

/* Which reader gets a new connection: the one with the fewest connections,
 * except that an awake reader is preferred while it holds no more than its
 * share (within_share): handing work to a thread that is running anyway saves
 * waking a sleeping one (a context switch; on a one-request connection that
 * is a third of its cost), and the bound keeps one busy reader from
 * collecting every connection while the others sleep. */
static uint16_t pick_reader(void)
{
    unsigned nr = (unsigned)sl_srv.nreaders;
    if (nr == 1)
        return 0;
    unsigned start = uatomic_add_return(&sl_srv.rr_reader, 1);
    long least = LONG_MAX, least_awake = LONG_MAX;
    unsigned pick = start % nr, pick_awake = nr;
    for (unsigned k = 0; k < nr; k++) {
        unsigned i = (start + k) % nr;
        long n = uatomic_read(&sl_srv.reader_conns[i]);
        if (n < least) {
            least = n;
            pick = i;
        }
        if (n < least_awake && !sl_queue_sleeping(&sl_srv.reader_q[i])) {
            least_awake = n;
            pick_awake = i;
        }
    }
    if (pick_awake < nr && within_share(least_awake, least))
        return (uint16_t)pick_awake;
    return (uint16_t)pick;
}

/* The adaptive limit's controller (stages/admission.h). Acceptor 0 runs it;
 * every acceptor adds to accepts, peak and bound (relaxed atomics, read once
 * per interval), and reads the limit from sl_srv.adm_limit. */
static struct sl_adm_ctl ctl;

/* The controller's state is one thread's at a time: acceptor 0's, or reader
 * 0's while the readers accept. Across a switch between the two (a reload
 * that sets [acceptor] threads to or from 0) both may try for a moment; the
 * one that does not get the lock skips that turn. */
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

/* The open connections admitted now: max_connections, or the adaptive limit
 * under policy = limit with admission control on. */
static long admit_limit(long max)
{
    if (sl_set.adm_policy != SL_ADM_LIMIT ||
        sl_set.adm_target_ns == 0)
        return max;
    long limit = __atomic_load_n(&sl_srv.adm_limit, __ATOMIC_RELAXED);
    return limit > 0 ? SL_MIN(max, limit) : max;
}

static void set_backlog(int b)
{
    if (b == ctl.backlog)
        return;
    /* listen(2) on a listening socket changes its backlog in place. */
    if (listen(sl_srv.listen_fd, b) != 0) {
        sl_log(SL_LOG_WARN, "admission: listen backlog %d: %s", b, strerror(errno));
        return;
    }
    ctl.backlog = b;
    __atomic_store_n(&sl_srv.adm_backlog, b, __ATOMIC_RELAXED);
}

/* While the limit binds, lets new SYNs through the filter as the accept queue
 * has room below its target (synfilter.h); else opens the gate. Acceptor 0,
 * each time it looks at the limit: every few milliseconds while it binds. */
static void gate_refill(void)
{
    if (!ctl.gating) {
        sl_synfilter_gate(-1);
        return;
    }
    long waiting = sl_adm_accept_queue(NULL);
    if (waiting >= 0)
        sl_synfilter_gate(SL_MAX(0, (long)ctl.queue_target - waiting));
}

/* Sheds or stops: the listen backlog, the SYN gate and the SYN filter's
 * dropping of retransmissions, with ctl.queue_target set for SHED. */
static void set_shedding(bool shed, int bmax)
{
    ctl.gating = shed && sl_set.adm_gate_syns && sl_synfilter_on();
    /* Gated, the queue stays near its target and the backlog above it is
       room for handshakes under way; else the backlog is the bound. */
    set_backlog(!shed        ? bmax
                : ctl.gating ? SL_MIN(bmax, 2 * ctl.queue_target)
                             : ctl.queue_target);
    gate_refill();
    __atomic_store_n(&sl_srv.adm_queue_target, ctl.gating ? ctl.queue_target : 0,
                     __ATOMIC_RELAXED);
    /* While the limit binds the short backlog overflows: keep its room for
       new clients, not for retransmissions already late. */
    sl_synfilter_shed(shed);
}

/* The readers' queue waits (SUM over COUNT requests) and time waiting for
 * work (IDLE_NS) since the last call. */
static void take_counters(uint64_t *sum, uint64_t *count, uint64_t *idle_ns)
{
    *sum = *count = *idle_ns = 0;
    for (int i = 0; i < sl_srv.nreaders; i++) {
        const struct sl_adm_reader *a = &sl_srv.adm_reader[i];
        uint64_t ws = __atomic_load_n(&a->wait_sum, __ATOMIC_RELAXED);
        uint64_t wn = __atomic_load_n(&a->wait_count, __ATOMIC_RELAXED);
        uint64_t in = __atomic_load_n(&a->idle_ns, __ATOMIC_RELAXED);
        *sum += ws - ctl.wait_sum[i];
        *count += wn - ctl.wait_count[i];
        *idle_ns += in - ctl.idle_ns[i];
        ctl.wait_sum[i] = ws;
        ctl.wait_count[i] = wn;
        ctl.idle_ns[i] = in;
    }
}

/* Seconds since the current interval began. */
static double interval_span(uint64_t now, uint64_t interval)
{
    return (double)(now + interval - ctl.interval_end) / 1e9;
}

/* The share of SPAN seconds the readers waited for work, IDLE_NS in all. */
static double idle_share(uint64_t idle_ns, double span)
{
    return sl_srv.nreaders > 0 ? (double)idle_ns / 1e9 / span / sl_srv.nreaders : 1.0;
}

/* Between ticks, every SL_ADM_PEEK_NS while not shedding: whether the accept
 * queue stands now and stood no shorter at the last look (stages/admission.h),
 * with the accepts and the readers' idle time of the interval so far. */
static bool peek_queue(uint64_t now, uint64_t interval, uint64_t target)
{
    if (now < ctl.peek_due || now < ctl.shed_until || !sl_readers_accept())
        return false;
    ctl.peek_due = now + SL_ADM_PEEK_NS;
    uint64_t idle_ns = 0;
    for (int i = 0; i < sl_srv.nreaders; i++)
        idle_ns += __atomic_load_n(&sl_srv.adm_reader[i].idle_ns, __ATOMIC_RELAXED) -
                   ctl.idle_ns[i];
    double span = interval_span(now, interval);
    if (span <= 0)
        return false;
    double idle = idle_share(idle_ns, span);
    long waiting = sl_adm_accept_queue(NULL);
    long before = ctl.peek_waiting;
    bool standing = sl_adm_standing_queue(waiting, __atomic_load_n(&ctl.accepts, __ATOMIC_RELAXED),
                                          span, idle, SL_ADM_PEEK_TARGETS * target);
    ctl.peek_waiting = standing ? waiting : LONG_MAX;
    return standing && waiting >= before && before != LONG_MAX;
}

/* Closes an interval of the adaptive limit if one is over: takes the mean
 * internal queue wait of the requests the readers parsed in it and the share
 * of it the readers spent waiting for work, and sets the next limit and the
 * listen backlog. */
static void adm_tick(uint64_t now)
{
    uint64_t interval = sl_set.adm_interval_ns;
    uint64_t target = sl_set.adm_target_ns;
    long max = sl_set.max_connections;
    int bmax = sl_set.adm_backlog_max;
    bool on = sl_set.adm_policy == SL_ADM_LIMIT && target > 0;
    if (ctl.interval_end == 0) {
        /* The first interval starts now: what came before is not in it. */
        uint64_t sum, count, idle_ns;
        take_counters(&sum, &count, &idle_ns);
        __atomic_store_n(&ctl.accepts, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ctl.bound, false, __ATOMIC_RELAXED);
        ctl.on = on;
        ctl.limit = on ? (double)SL_MIN((long)SL_ADM_LIMIT_START, max) : (double)max;
        ctl.backlog = bmax;
        __atomic_store_n(&sl_srv.adm_limit, (long)ctl.limit, __ATOMIC_RELAXED);
        __atomic_store_n(&sl_srv.adm_backlog, bmax, __ATOMIC_RELAXED);
        ctl.interval_end = now + interval;
        ctl.peek_waiting = LONG_MAX;
        return;
    }
    if (now < ctl.interval_end && !(on && peek_queue(now, interval, target)))
        return;
    uint64_t sum, count, idle_ns;
    take_counters(&sum, &count, &idle_ns);
    uint64_t wait = count > 0 ? sum / count : SL_ADM_NO_WAIT;
    __atomic_store_n(&sl_srv.adm_signal_ns, wait, __ATOMIC_RELAXED);
    long open = uatomic_read(&sl_srv.conns);
    long peak = SL_MAX(__atomic_load_n(&ctl.peak, __ATOMIC_RELAXED), open);
    uint64_t accepts = __atomic_exchange_n(&ctl.accepts, 0, __ATOMIC_RELAXED);
    bool bound = __atomic_exchange_n(&ctl.bound, false, __ATOMIC_RELAXED);
    double span = interval_span(now, interval);
    double idle = idle_share(idle_ns, span);
    /* Readers that accept serve what they accept in the same round: open
       connections pile up only with sessions, and the queue that builds past
       the knee is the kernel's accept queue. An accept queue longer than
       what the readers accept in a target while busy (the interval's
       accepts over its busy share: a connection at its end would wait that
       long) is a standing queue, in the kernel: the limit binds and sluice
       is past what it serves in time. Not the smoothed rate: at start it
       is near zero, and a burst of clients the readers take in a few
       milliseconds read as a standing queue. For the same reason, readers
       idle half the interval or more have it confirmed by the look before
       (sl_adm_queue_stands). */
    long waiting = on ? sl_adm_accept_queue(NULL) : 0; /* one look for the whole tick */
    bool queued = false;
    if (on && sl_readers_accept() &&
        sl_adm_queue_stands(waiting, ctl.peek_waiting, accepts, span, idle, target))
        bound = queued = true;
    /* The gate turned new SYNs away in the interval while the readers had
       no time to spare: the accept queue stood at its target while more
       clients came. That is the limit binding too, and what keeps shedding
       on while the gate does its work: the queue's length at the tick alone
       misses it, as the readers drain the queue in batches and it often
       reads short just then. (Measured at 1.2x the knee, one request per
       connection: shedding lapsed for a moment every few seconds, and the
       retransmitted SYNs it let in were answered 1.1 s late, the p99 of
       admitted requests.) Not while the readers wait for work: the gate's
       credit follows the rate of accepts, and a gate that kept itself shut
       on its own refusals would hold that rate down for good (measured: a
       bursty client at 6,000 connections/s held to 1,000/s). */
    struct sl_synfilter_counts sc;
    sl_synfilter_counts(&sc);
    if (on && ctl.gating && sc.gated != ctl.gated_seen && idle < SL_ADM_IDLE_MIN)
        bound = true; /* and past what sluice serves in time: idle is short */
    ctl.gated_seen = sc.gated;
    __atomic_store_n(&sl_srv.adm_idle_pct, (int)(idle * 100 + 0.5), __ATOMIC_RELAXED);
    if (on && !ctl.on) /* turned on by a reload: start low, as at start */
        ctl.limit = (double)SL_MIN((long)SL_ADM_LIMIT_START, max);
    ctl.on = on;
    if (on) {
        ctl.limit = sl_adm_next_limit(ctl.limit, peak, bound, wait, target, idle,
                                      bound ? waiting : 0, SL_ADM_LIMIT_MIN, max);
        /* Smoothed: an interval right after the limit fell accepts little. */
        ctl.rate += ((double)accepts / span - ctl.rate) / 4;
        /* A binding limit sheds only past what sluice serves in time: a
           standing queue in the kernel (above), requests queueing inside
           sluice (a mean wait of half the target or more, now or in the
           last SL_ADM_SHED_HOLD_NS), or readers with no time to spare.
           Held back with idle readers and short waits, the limit is behind
           the load (at start, or as a burst of clients arrives) and grows
           instead; refusing SYNs then turned away clients sluice had time
           for (measured: h2load's first bursts at 6,000 connections/s,
           15-564 of 30,000 refused at 0.25 CPU). Shedding outlasts the
           binding by SL_ADM_SHED_HOLD_NS: the SYNs turned away while it
           bound come back a second later. */
        if (wait != SL_ADM_NO_WAIT && wait >= target / 2)
            ctl.queued_until = now + SL_ADM_SHED_HOLD_NS;
        if (bound && (queued || idle < SL_ADM_IDLE_MIN || now < ctl.queued_until))
            ctl.shed_until = now + SL_ADM_SHED_HOLD_NS;
        bool shed = now < ctl.shed_until;
        ctl.queue_target = sl_adm_next_backlog(ctl.rate, shed, target, bmax);
        set_shedding(shed, bmax);
    } else {
        ctl.limit = (double)max;
        ctl.shed_until = 0;
        ctl.queued_until = 0;
        set_shedding(false, bmax);
    }
    __atomic_store_n(&sl_srv.adm_limit, (long)ctl.limit, __ATOMIC_RELAXED);
    __atomic_store_n(&ctl.peak, open, __ATOMIC_RELAXED);
    ctl.interval_end = now + interval;
    ctl.peek_waiting = LONG_MAX;
}

/* What the controller's turn does: close an interval of the limit if one is
 * over, refill the SYN gate, or refill it if BOUND_REFILL_NS have passed
 * since the last such refill (found the limit binding, nothing accepted: a
 * reader may find that once a round, and each refill reads TCP_INFO). */
enum turn { TICK, REFILL, BOUND_REFILL };

/* The controller's turn, if no other thread has it. NOW: sl_now_ns(). */
static void control(uint64_t now, enum turn what)
{
    if (pthread_mutex_trylock(&ctl_lock) != 0)
        return;
    if (what == TICK) {
        adm_tick(now);
    } else if (what == REFILL) {
        gate_refill();
    } else if (now >= ctl.refill_due) {
        gate_refill();
        ctl.refill_due = now + BOUND_REFILL_NS;
    }
    pthread_mutex_unlock(&ctl_lock);
}

void sl_adm_control(uint64_t now)
{
    control(now, TICK);
}

bool sl_readers_accept(void)
{
    return __atomic_load_n(&sl_srv.acceptor_target, __ATOMIC_ACQUIRE) == 0 &&
           __atomic_load_n(&sl_srv.accepting, __ATOMIC_ACQUIRE) != 0 &&
           __atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) == 0;
}

static bool should_run(const struct sl_thread *t)
{
    return __atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) == 0 &&
           t->index < __atomic_load_n(&sl_srv.acceptor_target, __ATOMIC_ACQUIRE);
}

int sl_accept_some(struct sl_tstats *st, bool controller, int batch, int reader,
                   sl_accept_take_fn *take, void *ctx)
{
    for (int i = 0; i < batch; i++) {
        long max = sl_set.max_connections;
        long limit = admit_limit(max);
        long open = uatomic_read(&sl_srv.conns);
        if (limit < max && open >= limit) {
            __atomic_store_n(&ctl.bound, true, __ATOMIC_RELAXED);
            if (controller)
                control(sl_now_ns(), BOUND_REFILL);
            return -FULL_WAIT_MS; /* the adaptive limit: leave it in the backlog */
        }
        if (sl_set.adm_on_full == SL_FULL_WAIT && open >= max && !room_from_idle(max))
            return -FULL_WAIT_MS; /* leave it queued in the kernel; look again soon */
        if (reader >= 0 && !sl_reader_may_accept(reader))
            return -FULL_WAIT_MS; /* past its share: the other readers accept */
        struct sockaddr_in6 peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(sl_srv.listen_fd, (struct sockaddr *)&peer, &plen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
            case EINTR:
                if (controller)
                    control(0, REFILL); /* the queue is empty: room for the target */
                return POLL_MS;
            case ECONNABORTED:
            case EPROTO:
            case EPERM: /* firewall said no to this one */
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM: {
                static __thread uint64_t last_log;
                uint64_t now = sl_now_ns();
                if (now - last_log > 1000000000ull) {
                    sl_log(SL_LOG_ERROR, "accept: %s; pausing accepts for %d ms",
                           strerror(errno), PAUSE_MS);
                    last_log = now;
                }
                SL_COUNTER_ADD(&st->ev.accept_errors, 1);
                return -PAUSE_MS;
            }
            default:
                /* EINVAL: stopping shut the socket down (sl_pipeline_stop). */
                if (__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) != 0)
                    return -PAUSE_MS;
                sl_log(SL_LOG_ERROR, "accept: %s", strerror(errno));
                SL_COUNTER_ADD(&st->ev.accept_errors, 1);
                return -PAUSE_MS;
            }
        }
        /* Reserve a slot before handing the connection on; the writer or reader
           that closes it gives the slot back. */
        long now_open = uatomic_add_return(&sl_srv.conns, 1);
        __atomic_fetch_add(&ctl.accepts, 1, __ATOMIC_RELAXED);
        long peak = __atomic_load_n(&ctl.peak, __ATOMIC_RELAXED);
        while (now_open > peak && !__atomic_compare_exchange_n(&ctl.peak, &peak, now_open, true,
                                                               __ATOMIC_RELAXED,
                                                               __ATOMIC_RELAXED))
            ;
        bool refuse = false;
        if (now_open > max && !admit_full(fd, now_open, max, &refuse, st))
            continue;
        /* TCP_NODELAY comes from the listening socket (accepted sockets
           inherit it): no setsockopt per connection. */
        SL_COUNTER_ADD(&st->ev.conn_accepted, 1);
        SL_COUNTER_ADD(&st->stage[SL_STAGE_ACCEPTOR].processed, 1);
        struct sl_conn *c = sl_conn_new(fd);
        memcpy(&c->peer, &peer, SL_MIN((size_t)plen, sizeof(c->peer)));
        c->reader = reader >= 0 ? (uint16_t)reader : pick_reader();
        uatomic_inc(&sl_srv.reader_conns[c->reader]);
        c->refuse = refuse;
        c->accepted_ns = sl_now_ns();
        if (reader < 0) {
            sl_to_reader(c);
        } else {
            c->owner = SL_STAGE_READER; /* born in the reader that keeps it */
            take(ctx, c);
            /* A reader serves what it accepts: a batch can take it a long
               time (a tenth of a second at 0.1 CPU), and the controller
               looks at the accept queue meanwhile. */
            if (reader == 0 && i % TICK_EVERY == TICK_EVERY - 1)
                control(sl_now_ns(), TICK);
        }
    }
    if (controller)
        control(0, REFILL); /* the batch took room in the queue: new credit */
    return 0;
}

void *sl_acceptor_main(void *arg)
{
    struct sl_thread *t = arg;
    sl_set_thread_name("acceptor"); /* every acceptor: the count is the config's */
    sl_conn_stage = SL_STAGE_ACCEPTOR;
    rcu_register_thread();
    struct sl_tstats *st = sl_tstats_self();
    int timeout = 0;
    while (should_run(t)) {
        if (timeout < 0) { /* out of descriptors: keep serving, accept later */
            poll(NULL, 0, -timeout);
            timeout = 0;
        } else if (timeout > 0) {
            struct pollfd p = {.fd = sl_srv.listen_fd, .events = POLLIN};
            int n = poll(&p, 1, timeout);
            if (n <= 0) {
                timeout = POLL_MS;
                if (t->index == 0) { /* the limit follows waits even with no accepts */
                    sl_settings_refresh();
                    control(sl_now_ns(), TICK);
                }
                continue;
            }
        }
        uint64_t t0 = sl_now_ns();
        sl_settings_refresh(); /* the settings for this burst, one snapshot */
        if (t->index == 0)
            control(t0, TICK);
        sl_queue_defer_begin(); /* one wake per reader for the whole burst */
        timeout = sl_accept_some(st, t->index == 0, ACCEPT_BATCH, -1, NULL, NULL);
        sl_queue_defer_end();
        SL_COUNTER_ADD(&st->stage[SL_STAGE_ACCEPTOR].busy_ns, sl_now_ns() - t0);
    }
    rcu_unregister_thread();
    return NULL;
}
