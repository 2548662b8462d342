/* admission.h: the adaptive admission limit. sluice turns work away where
 * that is cheapest: a connection it cannot serve in time is never accepted,
 * so it waits in (or is refused by) the kernel's listen backlog, and the
 * sessions already admitted finish.
 *
 * The limit is on open connections. Each interval ([admission]
 * queue_wait_interval) the acceptor compares the least time any request
 * waited inside sluice (from being accepted, or from its bytes reaching the
 * kernel when later, to being parsed: the backlog excluded) with the target
 * ([admission] queue_wait_target):
 *
 *   above it: a standing queue inside sluice. The limit falls to what was in
 *             use, scaled by target / wait (a gradient, as in Netflix's
 *             concurrency-limits), at most halving per interval.
 *   below it: if the limit was reached in the interval, it rises by up to an
 *             eighth, the more the further the wait is below the target.
 *
 * While the limit binds, the listen backlog is resized to what the acceptor
 * takes in about twice the target, so a connection waits in the kernel for a
 * bounded time and the rest are refused by the kernel (a dropped SYN), which
 * costs sluice nothing. */
#ifndef SLUICE_ADMISSION_H
#define SLUICE_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

#define SL_ADM_NO_WAIT UINT64_MAX /* no request was parsed in the interval */
#define SL_ADM_LIMIT_MIN 16       /* the limit never falls below this */
#define SL_ADM_BACKLOG_MIN 64     /* nor the backlog it sets */

/* The controller's state; owned by the acceptor thread. */
struct sl_adm_ctl {
    double limit;           /* open connections admitted at most */
    uint64_t interval_end;  /* when the current interval closes */
    long peak;              /* most connections open in the interval */
    uint64_t accepts;       /* connections accepted in the interval */
    double rate;            /* accepts per second, smoothed over intervals */
    bool bound;             /* the limit held a connection back in the interval */
    int backlog;            /* the listen backlog in force */
};

/* The next limit after an interval in which the least internal queue wait was
 * WAIT (SL_ADM_NO_WAIT: none), at most PEAK connections were open and the
 * limit BOUND (held a connection back) or not, for queue wait target TARGET.
 * The result is within [LO, HI]. Pure; cannot fail. */
double sl_adm_next_limit(double limit, long peak, bool bound, uint64_t wait,
                         uint64_t target, long lo, long hi);

/* The listen backlog for an interval in which connections were accepted at
 * RATE per second and the limit BOUND or not: about 2 x TARGET worth of
 * accepts while it binds, else MAX. Within [SL_ADM_BACKLOG_MIN, MAX]. Pure. */
int sl_adm_next_backlog(double rate, bool bound, uint64_t target, int max);

/* What the status socket shows of admission control now. */
struct sl_adm_state {
    const char *policy; /* "limit" or "codel" */
    long limit;         /* open connections admitted at most (max_connections
                           when the limit is off) */
    long admitted;      /* open connections */
    long waiting;       /* connections in the kernel's accept queue, -1 if unknown */
    int backlog;        /* the listen backlog in force */
    double wait_ms;     /* the last interval's least internal queue wait, -1: none */
};

/* Fills ST from the running server. Any thread; cannot fail. */
void sl_adm_state(struct sl_adm_state *st);

#endif
