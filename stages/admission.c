/* admission.c: the adaptive admission limit (see admission.h). */
#include "stages/admission.h"

#include "lib/common.h"
#include "stages/pipeline.h"
#include "stages/synfilter.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <urcu/uatomic.h>

double sl_adm_next_limit(double limit, long peak, bool bound, uint64_t wait,
                         uint64_t target, double idle, long waiting, long lo, long hi)
{
    if (target == 0) {
        /* Off: keep the limit. */
    } else if (wait != SL_ADM_NO_WAIT && wait > target) {
        /* A standing queue: what was in use, scaled down in proportion. */
        double used = SL_MIN(limit, (double)peak);
        double g = (double)target / (double)wait;
        limit = used * SL_MAX(0.5, SL_MIN(g, 0.95));
    } else if (bound && idle >= SL_ADM_IDLE_MIN) {
        /* Room to spare and connections waiting for it: grow, faster the
           further the wait is below the target. No request at all (the
           admitted connections idle between requests): no queue either. */
        double room = wait == SL_ADM_NO_WAIT ? 1.0 : 1.0 - (double)wait / (double)target;
        double step = SL_MAX(1.0, limit * room / 8);
        /* Far below the target with clients waiting outside: let them in
           sooner, up to room times the limit but no more than wait (a
           closed-loop client opening 2,000 connections at once would
           otherwise wait seconds for the limit to creep up from its start). */
        if (room >= SL_ADM_FAST_ROOM && waiting > 0)
            step = SL_MAX(step, SL_MIN((double)waiting, limit * room));
        limit += step;
    }
    if (limit < (double)lo)
        limit = (double)lo;
    if (limit > (double)hi)
        limit = (double)hi;
    return limit;
}

bool sl_adm_standing_queue(long waiting, uint64_t accepts, double span, double idle,
                           uint64_t target)
{
    if (waiting <= SL_ADM_BACKLOG_MIN || span <= 0)
        return false;
    double busy_rate = (double)accepts / span / SL_MAX(1.0 - idle, SL_ADM_IDLE_MIN);
    return (double)waiting > busy_rate * (double)target / 1e9;
}

bool sl_adm_queue_stands(long waiting, long before, uint64_t accepts, double span, double idle,
                         uint64_t target)
{
    if (!sl_adm_standing_queue(waiting, accepts, span, idle, target))
        return false;
    return idle < SL_ADM_BURST_IDLE || (before != LONG_MAX && waiting >= before);
}

long sl_adm_gate_grant(long room, long granted, long left)
{
    long used = SL_MAX(0, granted - SL_MAX(left, 0));
    return SL_MAX(0, room - used);
}

int sl_adm_next_backlog(double rate, bool bound, uint64_t target, int max)
{
    if (!bound || target == 0)
        return max;
    double b = rate * SL_ADM_BACKLOG_TARGETS * (double)target / 1e9;
    if (b < SL_ADM_BACKLOG_MIN)
        b = SL_ADM_BACKLOG_MIN;
    if (b > (double)max)
        b = (double)max;
    return (int)b;
}

long sl_adm_accept_queue(long *limit)
{
    /* On a listening socket, TCP_INFO's unacked is the accept queue's length
       and sacked its limit (the backlog in force). */
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int fd = sl_srv.listen_fd;
    if (limit)
        *limit = -1;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    if (limit)
        *limit = (long)ti.tcpi_sacked;
    return (long)ti.tcpi_unacked;
}

void sl_adm_state(struct sl_adm_state *st)
{
    bool codel = sl_set.adm_policy == SL_ADM_CODEL; /* the caller refreshed sl_set */
    st->policy = codel ? "codel" : "limit";
    st->limit = __atomic_load_n(&sl_srv.adm_limit, __ATOMIC_RELAXED);
    st->admitted = uatomic_read(&sl_srv.conns);
    st->backlog = __atomic_load_n(&sl_srv.adm_backlog, __ATOMIC_RELAXED);
    st->queue_target = __atomic_load_n(&sl_srv.adm_queue_target, __ATOMIC_RELAXED);
    st->idle = __atomic_load_n(&sl_srv.adm_idle_pct, __ATOMIC_RELAXED) / 100.0;
    uint64_t w = __atomic_load_n(&sl_srv.adm_signal_ns, __ATOMIC_RELAXED);
    st->wait_ms = w == SL_ADM_NO_WAIT ? -1 : (double)w / 1e6;
    struct sl_synfilter_counts sc;
    sl_synfilter_counts(&sc);
    st->syn_filter = sl_synfilter_on();
    st->syn_shedding = sc.shedding;
    st->syns = sc.syns;
    st->syn_retries = sc.retries;
    st->syn_retries_dropped = sc.dropped;
    st->syn_gating = sc.gating;
    st->syns_gated = sc.gated;
    st->syn_memory = sc.memory;
    st->waiting = sl_adm_accept_queue(NULL);
}
