/* loop.h: the event loop the reader and the detector share: one epoll set
 * that also watches the stage's input queue (its eventfd), a sweep clock for
 * the stage's timeout lists, and timeout lists kept in deadline order. */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include "queue/queue.h"
#include "stages/conn.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <urcu/list.h>

struct sl_loop {
    int epfd;
    struct sl_queue *q;  /* its eventfd is in the set with data.ptr = NULL */
    uint64_t period;     /* sweep the timeout lists this often (ns) */
    uint64_t next_sweep; /* sl_now_ns() time of the next sweep; 0: at once */
    uint64_t wake_by;    /* nonzero: wake no later than this too (the owner's) */
};

/* Pure. Milliseconds to sleep at NOW so as to wake no earlier than DUE (both
 * sl_now_ns() times): 0 once DUE has passed (a round that ran late must not
 * sleep at all), else the difference rounded up, at most INT_MAX. Never
 * negative: epoll_wait() would take that as "no timeout". */
int sl_loop_timeout_ms(uint64_t now, uint64_t due);

/* Pure. Is a sweep due at NOW? If so, the next one is due PERIOD after NOW
 * (not after the missed due time: one late round does not cause a burst of
 * sweeps). */
bool sl_loop_sweep_due(uint64_t *next_sweep, uint64_t now, uint64_t period);

/* Sets up L for the consumer of Q: a new epoll set with Q's eventfd in it.
 * Returns SL_OK, or SL_ERR with errno set (nothing to free then). */
int sl_loop_init(struct sl_loop *l, struct sl_queue *q, uint64_t period);

/* Is a sweep due at NOW (see sl_loop_sweep_due)? */
bool sl_loop_sweep(struct sl_loop *l, uint64_t now);

/* Waits for events at most until the next sweep or wake_by: not at all when MORE (the
 * last batch was full, so more may be queued) or when Q has items, else
 * announcing the sleep to Q's producers for the duration. NOW is the time
 * the round's work ended. Returns epoll_wait()'s result (events in EVS; -1
 * with errno EINTR is possible); Q's eventfd, if among them (data.ptr ==
 * NULL), is drained already. Only the consumer thread of Q may call it. */
int sl_loop_wait(struct sl_loop *l, struct epoll_event *evs, int max, bool more,
                 uint64_t now);

/* Closes L's epoll set (connections still in it are the caller's). */
void sl_loop_close(struct sl_loop *l);

/* Puts C on LIST, kept in ascending c->deadline_ns order, so a sweep can stop
 * at the first connection not yet due. Searches from the tail: a connection
 * that just got its deadline (now + a constant) goes there in one step. */
void sl_timer_add(struct cds_list_head *list, struct sl_conn *c);

#endif
