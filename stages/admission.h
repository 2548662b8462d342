/* admission.h: the adaptive admission limit ([admission] policy = limit).
 * sluice turns work away where that costs it least: a connection it cannot
 * serve in time is not accepted; it waits in the kernel's listen backlog
 * until an admitted one closes, and the sessions already admitted finish.
 *
 * The limit is on open connections. Each interval ([admission]
 * queue_wait_interval) the acceptor takes the mean time the requests parsed
 * in the interval waited inside sluice (from their connection's acceptance,
 * or their bytes reaching the kernel when later, to their parsing: the
 * backlog excluded) and the share of the interval the readers spent waiting
 * for work:
 *
 *   wait above the target ([admission] queue_wait_target): a standing queue
 *             inside sluice. The limit falls to what was in use, scaled by
 *             target / wait (a gradient, as in Netflix's concurrency-limits),
 *             at most halving per interval.
 *   else, if the limit held connections back and the readers waited for
 *             work at least SL_ADM_IDLE_MIN of the time: there is room; the
 *             limit rises by up to an eighth, the more the further the wait
 *             is below the target (an eighth when no request came at all:
 *             admitted connections idle between requests do not hold new
 *             clients back for good). When the wait is below half the
 *             target and clients wait in the accept queue, it rises by up
 *             to room x limit instead (room = 1 - wait / target), but by no
 *             more than wait there: 2,000 connections opened at once by a
 *             closed-loop client are let in within a few intervals, not
 *             after seconds of creeping up from the start.
 *   else it stays: readers busy all the time gain nothing from more
 *             connections, only a longer queue.
 *
 * While the limit binds and sluice is past what it serves in time (an accept
 * queue longer than what busy readers that accept take in a target, a mean
 * wait of half the target or more now or in the last SL_ADM_SHED_HOLD_NS, or
 * readers without SL_ADM_IDLE_MIN to spare), it sheds: the listen backlog is
 * resized to what the acceptor
 * takes in SL_ADM_BACKLOG_TARGETS targets: a connection waits in the kernel a
 * bounded time, and the kernel drops the SYNs of the rest. Measured with one
 * request per connection at twice the knee, a full 4,096 backlog made every
 * admitted client wait past a 500 ms deadline (goodput 0.03 of the knee's);
 * bounded, 0.53. (With sessions of five requests the long wait costs only the
 * first request of each, and a bounded backlog kept 0.64 against 0.72.) A
 * limit that binds while readers idle and waits are short is behind the load,
 * at start or as a burst arrives, and only grows: shedding then turned away
 * clients sluice had time for (h2load's first bursts).
 *
 * Between ticks, every SL_ADM_PEEK_NS while not shedding (also while
 * reader 0 serves a batch it accepted), the controller looks for a queue in
 * the kernel of SL_ADM_PEEK_TARGETS targets' accepts; found twice in a row,
 * no shorter the second time, it closes the interval at once. At start, or
 * as the load jumps far past what sluice serves, a whole interval's
 * arrivals would otherwise wait in the accept queue before the first tick
 * sheds (measured at 0.1 CPU, 10,000 new connections/s offered, ASan build:
 * 500-2,300 queued within the first interval, the p99 of admitted requests
 * 0.3-1.0 s; with the looks, 151-369 ms).
 *
 * It starts at SL_ADM_LIMIT_START and grows as the load needs. The mean, not
 * the least wait CoDel uses: with thousands of connections in a reader's
 * epoll set some request is always served at once while most wait, so the
 * least wait stays low and a limit that follows it grows without bound
 * (measured: to 12,000 connections at twice the knee, where goodput fell to
 * 0.6 of the knee's). */
#ifndef SLUICE_ADMISSION_H
#define SLUICE_ADMISSION_H

#include "core/config.h"

#include <stdbool.h>
#include <stdint.h>

#define SL_ADM_NO_WAIT UINT64_MAX /* no request was parsed in the interval */
#define SL_ADM_LIMIT_MIN 16       /* the limit never falls below this */
#define SL_ADM_LIMIT_START 256    /* the limit at start; it grows while needed
                                     (1,024 let h2load's first bursts in whole,
                                     but at 0.1 CPU admitted a second's work at
                                     once, and shedding lapsed as it drained) */
#define SL_ADM_BACKLOG_MIN 64     /* the backlog never falls below this */
#define SL_ADM_BACKLOG_TARGETS 3  /* while the limit binds, the backlog holds
                                     what sluice accepts in this many targets
                                     (5 before: p99 of admitted requests
                                     268-302 ms with sessions, 403-537 ms in
                                     the disk preset at 2-4x the knee, against
                                     151-302 ms with 3. 2 overflowed at
                                     h2load's bursts of a tenth of a second's
                                     connections when any binding shed; now a
                                     limit sheds only past the knee, and 3
                                     let those bursts in whole) */
#define SL_ADM_IDLE_MIN 0.05      /* the limit grows only while the readers wait
                                     for work this share of the time or more */
#define SL_ADM_SHED_HOLD_NS 2000000000ull /* shedding outlasts the limit's
                                     binding this long: the SYNs turned away
                                     come back 1 s later (then 3 s) */
#define SL_ADM_PEEK_NS 10000000ull  /* between ticks, while not shedding, the
                                     accept queue is looked at this often */
#define SL_ADM_PEEK_TARGETS 3    /* ... for a queue this many targets long (a
                                     burst of clients the readers drain within
                                     an interval is not a standing queue:
                                     h2load's bursts of 800 connections every
                                     100 ms at 0.25 CPU lost up to 7,617 of
                                     40,000 clients to a look for one target) */
#define SL_ADM_BURST_IDLE 0.5     /* readers that waited for work this share of
                                     an interval or more: a queue at its tick
                                     is a burst that just reached them until a
                                     look confirms it (sl_adm_queue_stands) */
#define SL_ADM_FAST_ROOM 0.5      /* mean wait below (1 - this) x target with
                                     clients waiting: grow by up to room x limit */

/* The controller's state; owned by the acceptor thread. */
struct sl_adm_ctl {
    double limit;           /* open connections admitted at most */
    uint64_t interval_end;  /* when the current interval closes */
    uint64_t peek_due;      /* the next look at the accept queue between ticks */
    long peek_waiting;      /* the accept queue's length at the last look
                               (LONG_MAX: none since the tick) */
    long peak;              /* most connections open in the interval */
    bool bound;             /* the limit held a connection back in the interval */
    bool on;                /* the limit was in force in the last interval */
    uint64_t accepts;       /* connections accepted in the interval */
    double rate;            /* accepts per second, smoothed over intervals */
    int backlog;            /* the listen backlog in force */
    int queue_target;       /* while the limit binds: the accept queue's length
                               aimed at (sl_adm_next_backlog) */
    bool gating;            /* the SYN filter gates new SYNs to that length */
    uint64_t refill_due;    /* a refill while the limit binds waits until then */
    uint64_t gated_seen;    /* the SYN gate's count of new SYNs turned away, at
                               the last tick */
    uint64_t shed_until;    /* the backlog stays short and the SYN filter sheds
                               until then: SL_ADM_SHED_HOLD_NS past the last
                               interval in which the limit bound while
                               sluice was past what it serves in time */
    uint64_t queued_until;  /* SL_ADM_SHED_HOLD_NS past the last interval whose
                               mean wait was half the target or more */
    /* Each reader's sl_adm_reader counts at the last tick. */
    uint64_t wait_sum[SL_MAX_THREADS];
    uint64_t wait_count[SL_MAX_THREADS];
    uint64_t idle_ns[SL_MAX_THREADS];
};

/* The next limit after an interval in which the mean internal queue wait was
 * WAIT (SL_ADM_NO_WAIT: no request), at most PEAK connections were open, the
 * limit BOUND (held a connection back) or not, the readers waited for work
 * IDLE (0..1) of the time, and WAITING connections are in the accept queue
 * now (-1: unknown), for queue wait target TARGET (0: off, the limit is
 * kept). The result is within [LO, HI]. Pure; cannot fail. */
double sl_adm_next_limit(double limit, long peak, bool bound, uint64_t wait,
                         uint64_t target, double idle, long waiting, long lo, long hi);

/* Whether WAITING connections in the kernel's accept queue are a standing
 * queue: more than what the readers accept in TARGET while busy, at least
 * SL_ADM_BACKLOG_MIN. ACCEPTS connections were accepted in the last SPAN
 * seconds, in which the readers waited for work IDLE (0..1) of the time; the
 * busy share is taken as at least SL_ADM_IDLE_MIN, so a burst that arrives
 * at idle readers reads as the rate they take it at, not as a queue. Pure;
 * cannot fail. */
bool sl_adm_standing_queue(long waiting, uint64_t accepts, double span, double idle,
                           uint64_t target);

/* The tick's judgment of the accept queue: WAITING connections stand (as
 * sl_adm_standing_queue says, for one TARGET) and the readers were busy,
 * idle less than SL_ADM_BURST_IDLE of the interval; or, readers idle, the
 * look before the tick (every SL_ADM_PEEK_NS) found BEFORE waiting, a
 * standing queue no longer than now (LONG_MAX: it found none, or there was
 * none). An interval the readers spent idle accepts little, and a burst of
 * clients that lands just before its tick reads as a queue past what that
 * rate takes in a target; they drain it within milliseconds (measured, TSan
 * build: 87 connections at the tick of an interval with 3 accepts and the
 * readers idle 99% of it, shed; the look after found 1). Pure; cannot
 * fail. */
bool sl_adm_queue_stands(long waiting, long before, uint64_t accepts, double span, double idle,
                         uint64_t target);

/* The SYN gate's next credit (synfilter.h): the accept queue has ROOM below
 * its target; the gate was given GRANTED new SYNs last time and has LEFT of
 * them (below zero when two CPUs took the last one at once). Those let through
 * since are taken to be on their way to the queue, not in it yet: the result,
 * ROOM less them, never below zero, is conservative by at most one call's
 * worth, which the next call gives back. Pure; cannot fail. */
long sl_adm_gate_grant(long room, long granted, long left);

/* Connections in the kernel's accept queue now, -1 if unknown (one
 * getsockopt); LIMIT, if not NULL, gets the queue's limit (-1 if unknown).
 * Any thread. */
long sl_adm_accept_queue(long *limit);

/* The listen backlog for an interval in which connections were accepted at
 * RATE per second and the limit BOUND or not: what sluice accepts in
 * SL_ADM_BACKLOG_TARGETS x TARGET while it binds, so a connection waits in the
 * kernel a bounded time and the kernel refuses the rest; else MAX. Within
 * [SL_ADM_BACKLOG_MIN, MAX]. Pure; cannot fail. */
int sl_adm_next_backlog(double rate, bool bound, uint64_t target, int max);

/* What the status socket shows of admission control now. */
struct sl_adm_state {
    const char *policy; /* "limit" or "codel" */
    long limit;         /* open connections admitted at most (max_connections
                           when the limit is off) */
    long admitted;      /* open connections */
    long waiting;       /* connections in the kernel's accept queue, -1 if unknown */
    int backlog;        /* the listen backlog in force */
    int queue_target;   /* the accept queue length the SYN gate keeps to; 0: none */
    double idle;        /* the share of the last interval the readers waited
                           for work (0..1) */
    double wait_ms;     /* the last interval's mean internal queue wait, -1: none */
    bool syn_filter;    /* the SYN filter is attached (synfilter.h) */
    bool syn_shedding;  /* ... and dropping retransmitted SYNs now */
    bool syn_gating;    /* ... and gating new SYNs now */
    uint64_t syns, syn_retries, syn_retries_dropped, syns_gated; /* its counters */
    uint64_t syn_memory; /* bytes of its table of SYNs seen (kernel memory) */
};

/* Fills ST from the running server. Any thread; cannot fail. */
void sl_adm_state(struct sl_adm_state *st);

#endif
