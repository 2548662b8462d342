/* detector.c: stage 3, write readiness. Connections whose last write would
 * have blocked (or, with [writer] optimistic = off, every response) wait here
 * in a one-shot EPOLLOUT registration until the socket can take more, then
 * go back to the writer pool. A connection that cannot take a byte for
 * [timeouts] send is closed. */
#include "lib/log.h"
#include "stages/loop.h"
#include "stages/pipeline.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <urcu.h>

#define MAX_EVENTS 256
#define SWEEP_NS 250000000ull

struct detector {
    struct sl_loop loop; /* epoll set (with the queue's eventfd), sweep clock */
    struct sl_queue *q;
    struct cds_list_head waiting; /* deadline order (sl_timer_add) */
    struct sl_tstats *st;
};

static void watch(struct detector *d, struct sl_conn *c, uint64_t now)
{
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.ptr = c};
    int op = c->in_detector_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(d->loop.epfd, op, c->fd, &ev) != 0) {
        sl_log(SL_LOG_ERROR, "detector: epoll_ctl: %s", strerror(errno));
        sl_conn_close(c);
        return;
    }
    c->in_detector_epoll = true;
    c->deadline_ns = now + sl_set.send_timeout_ns;
    /* In order even when a reload shortens the timeout. */
    sl_timer_add(&d->waiting, c);
}

static void sweep(struct detector *d, uint64_t now, bool all)
{
    struct sl_conn *c, *tmp;
    cds_list_for_each_entry_safe(c, tmp, &d->waiting, timer_link)
    {
        if (!all && c->deadline_ns > now)
            break;
        cds_list_del(&c->timer_link);
        if (!all)
            sl_log(SL_LOG_DEBUG, "send timeout: closing fd %d", c->fd);
        sl_conn_close(c);
    }
}

void *sl_detector_main(void *arg)
{
    struct sl_thread *t = arg;
    struct detector d = {.q = &sl_srv.detector_q};
    sl_set_thread_name("detector");
    sl_conn_stage = SL_STAGE_DETECTOR;
    rcu_register_thread();
    d.st = sl_tstats_self();
    CDS_INIT_LIST_HEAD(&d.waiting);
    if (sl_loop_init(&d.loop, d.q, SWEEP_NS) != SL_OK) {
        sl_log(SL_LOG_CRIT, "detector: epoll: %s", strerror(errno));
        abort();
    }
    (void)t;
    struct sl_stage_counters *sc = &d.st->stage[SL_STAGE_DETECTOR];
    struct epoll_event evs[MAX_EVENTS];
    struct sl_qnode *batch[4096];
    while (__atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) < 2) {
        uint64_t t0 = sl_now_ns();
        sl_settings_refresh(); /* the settings for this round, one snapshot */
        size_t max = (size_t)sl_set.queue_batch;
        size_t n = sl_queue_pop_batch(d.q, batch, max);
        for (size_t i = 0; i < n; i++)
            watch(&d, sl_conn_of(batch[i]), t0);
        if (sl_loop_sweep(&d.loop, t0))
            sweep(&d, t0, false);
        uint64_t t1 = sl_now_ns();
        SL_COUNTER_ADD(&sc->busy_ns, t1 - t0);
        /* n == max: more may be queued. */
        int nev = sl_loop_wait(&d.loop, evs, MAX_EVENTS, n == max, t1);
        uint64_t t2 = sl_now_ns();
        sl_queue_defer_begin();
        for (int i = 0; i < nev; i++) {
            struct sl_conn *c = evs[i].data.ptr;
            if (c == NULL)
                continue;
            cds_list_del(&c->timer_link);
            SL_COUNTER_ADD(&sc->processed, 1);
            sl_to_writer(c);
        }
        sl_queue_defer_end();
        SL_COUNTER_ADD(&sc->busy_ns, sl_now_ns() - t2);
    }
    sweep(&d, 0, true);
    sl_loop_close(&d.loop);
    rcu_unregister_thread();
    return NULL;
}
